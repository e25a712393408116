#!/usr/bin/env bash
# Table 2 evaluates the MS MARCO model of Table 1 out of domain: no separate training.
exec "$(dirname "$0")/../table1/train.sh" "$@"
