"""Everything a user can do, without Qt. The UI and the CLI are thin layers over this package."""
