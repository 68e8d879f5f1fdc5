"""Pictures of head maps: static figures (``plot``) and the notebook explorer (``widgets``)."""
