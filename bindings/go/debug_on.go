//go:build debug

package surgewall

import "runtime"

// debugBuild is true under the debug tag: every handle access runs a full GC first, so a
// missing runtime.KeepAlive or a cleanup that runs too early fails loudly in tests (as in
// wasmtime-go).
const debugBuild = true

func maybeGC() { runtime.GC() }
