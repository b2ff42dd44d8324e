"""Generator APIs for Private Evolution (image APIs: ``diffusion``, ``stable-diffusion``)."""
