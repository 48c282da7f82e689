"""Moved to `flows.settings` (the job's config sits below `flows/`, see STYLE.md).

Kept so that `from mailflow.config import Settings` in user code and old
recovery snapshots (pickles name `mailflow.config.*`) keep working.
"""

from flows.settings import ENV_PREFIX, ConfigError, Settings, load_settings

__all__ = ["ENV_PREFIX", "ConfigError", "Settings", "load_settings"]
