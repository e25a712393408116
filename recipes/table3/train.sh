#!/usr/bin/env bash
# Table 3 evaluates the MS MARCO model of Table 1 on BRIGHT: no separate training.
exec "$(dirname "$0")/../table1/train.sh" "$@"
