"""Suite-wide settings."""

from __future__ import annotations

import os

from hypothesis import settings

# Property tests draw the same examples on every run unless asked otherwise, so a red CI run
# points at the change that caused it; HYPOTHESIS_PROFILE=explore draws new ones each time.
settings.register_profile("default", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
