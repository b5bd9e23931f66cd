//go:build surgewall_system

package surgewall

// Opt-in (`-tags surgewall_system`): link a system-installed libsurgewall found through
// pkg-config (surgewall.pc), typically the shared library.

/*
#cgo pkg-config: surgewall
*/
import "C"
