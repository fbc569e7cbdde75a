// Package layout holds meshlab's layout rules as a test: which folders may depend on which. The rules are
// what docs/architecture.md describes; the test reads the real import graph (`go list -deps`, non-test
// imports) and names every edge that breaks one, so the layout cannot drift without a failing build.
package layout
