"""A phone over adb: the user's adb server (never one we start), devices, pushes, runs, monitors."""
