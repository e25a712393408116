"""DEBATER: a passage embedded as M step vectors after step tokens, a query as one vector.

``model`` holds its config (and reading of the release's settings), step-token template, model and the
search-side helpers (one index row per step, the best step per passage); ``loss`` holds the max-step
cross entropy and the self-distillation of the last step. Importing DEBATER's names from this package
(the old module ``o1e_tevatron.families.debater``) is deprecated for one release."""
from o1e_tevatron.core.deprecation import moved_names

__getattr__ = moved_names(__name__, "o1e_tevatron.families.debater.model")
