// Package fidelity compares meshlab's generated config with Istio's for the same objects.
package fidelity
