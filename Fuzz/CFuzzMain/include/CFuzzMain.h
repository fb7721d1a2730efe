// Intentionally empty: the target exists for the entry points in CFuzzMain.c.
