#!/bin/sh
# Regenerates the Go code of meshlab's wire API (the workload API, its Authorization resource and the CA
# API); `go generate ./api/...` runs it. Needs protoc (Debian: apt-get install protobuf-compiler),
# protoc-gen-go at the version of google.golang.org/protobuf in go.mod, and protoc-gen-go-grpc
# (go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2, whose output needs grpc >= 1.64).
# The protos are compiled relative to the module root so that they register under a meshlab path
# (api/workloadapi/workload.proto), not a bare "workload.proto" another module might also use.
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
PATH="$(go env GOPATH)/bin:$PATH"
protoc -I . -I /usr/include \
  --go_out=. --go_opt=paths=source_relative \
  api/workloadapi/workload.proto api/workloadapi/security/authorization.proto
protoc -I . \
  --go_out=. --go_opt=paths=source_relative \
  --go-grpc_out=. --go-grpc_opt=paths=source_relative \
  api/cav1/ca.proto
