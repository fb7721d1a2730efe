// Header-only: see include/CCPUFeatures.h.
