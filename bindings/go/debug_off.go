//go:build !debug

package surgewall

const debugBuild = false

func maybeGC() {}
