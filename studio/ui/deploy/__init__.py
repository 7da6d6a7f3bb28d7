"""The Deploy workspace: target, backend config, compile, bundle browser, run/profile, adb."""
