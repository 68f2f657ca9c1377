"""HTTP in and out of the image endpoints: the body under its limits (body, limits), its
parts (multipart, pixels), and the BentoML input and output specs that call them (specs)."""
