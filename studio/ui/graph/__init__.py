"""The Graph workspace: the model drawn natively (layout, LOD, overlays, search) plus Netron."""
