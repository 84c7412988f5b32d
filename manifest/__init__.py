"""Teams app manifest template, icons and the app-package builder (see ``manifest.build``)."""
