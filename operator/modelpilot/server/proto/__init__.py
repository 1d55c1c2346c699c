"""Generated gRPC code of grpc_predict_v2.proto (`make proto`; do not edit the _pb2 modules)."""
