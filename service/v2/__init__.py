"""The Open Inference Protocol (KServe v2 REST): infer batching and its IO specs (protocol), the
GET routes (routes), tensors, schemas and /docs.json's routes (openapi)."""
