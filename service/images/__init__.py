"""Images: bytes -> a decoded, upright image (decode) -> the 28x28 MNIST frame (preprocess, on
contract.photo) -> a request's frames under its budgets (frames)."""
