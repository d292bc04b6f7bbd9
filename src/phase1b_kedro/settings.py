"""Project settings (Kedro 1.x). See https://docs.kedro.org/en/stable/configure/."""

from kedro.config import OmegaConfigLoader  # noqa: F401  (documented default)

from phase1b_kedro.hooks import CredentialsHooks, RunSummaryHooks

HOOKS = (RunSummaryHooks(), CredentialsHooks())

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Environments (conf/<env>/) override only what differs: deep-merge them into base.
    "merge_strategy": {"parameters": "soft", "catalog": "soft"},
}
