"""Generator APIs for Private Evolution (image: ``diffusion``, ``stable-diffusion``; see each module)."""
