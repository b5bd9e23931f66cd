//go:build !surgewall_system

package surgewall

// The default: link the static library that `make lib` puts under lib/<GOOS>_<GOARCH>, so a
// user's `go build` yields one self-contained binary (no rpath, no LD_LIBRARY_PATH).

/*
#cgo CFLAGS: -I${SRCDIR}/lib/include
#cgo linux,amd64 LDFLAGS: ${SRCDIR}/lib/linux_amd64/libsurgewall.a -lpthread -ldl -lm
#cgo linux,arm64 LDFLAGS: ${SRCDIR}/lib/linux_arm64/libsurgewall.a -lpthread -ldl -lm
#cgo darwin,amd64 LDFLAGS: ${SRCDIR}/lib/darwin_amd64/libsurgewall.a -lpthread -ldl -lm
#cgo darwin,arm64 LDFLAGS: ${SRCDIR}/lib/darwin_arm64/libsurgewall.a -lpthread -ldl -lm
*/
import "C"
