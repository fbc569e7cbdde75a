#!/bin/sh
# Regenerates the Go code of meshlab's CA API (cav1/ca.proto); go generate runs it.
# Needs protoc (Debian: apt-get install protobuf-compiler), protoc-gen-go at the version of
# google.golang.org/protobuf in go.mod, and protoc-gen-go-grpc (go install
# google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2, whose output needs grpc >= 1.64).
# Compiled relative to the module root so the file registers under a meshlab path.
set -eu
root="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$root"
PATH="$(go env GOPATH)/bin:$PATH"
protoc -I . \
  --go_out=. --go_opt=paths=source_relative \
  --go-grpc_out=. --go-grpc_opt=paths=source_relative \
  controlplane/ca/caservice/cav1/ca.proto
