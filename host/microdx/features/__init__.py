"""Feature front-ends on the host (numpy/scipy). The device will mirror them in a later issue."""
