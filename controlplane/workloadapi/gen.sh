#!/bin/sh
# Regenerates the Go code for meshlab's workload API protos (run from anywhere; go generate runs it).
# Needs protoc (Debian: apt-get install protobuf-compiler) and protoc-gen-go at the version of
# google.golang.org/protobuf in go.mod (go install google.golang.org/protobuf/cmd/protoc-gen-go@VERSION).
# The protos are compiled relative to the module root so that they register under a meshlab path
# (controlplane/workloadapi/workload.proto), not a bare "workload.proto" another module might also use.
set -eu
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
PATH="$(go env GOPATH)/bin:$PATH"
protoc -I . -I /usr/include \
  --go_out=. --go_opt=paths=source_relative \
  controlplane/workloadapi/workload.proto controlplane/workloadapi/security/authorization.proto
