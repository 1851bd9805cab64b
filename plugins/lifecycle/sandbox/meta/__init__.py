"""Meta Marketing API custom-audience users emulator (``api``)."""
