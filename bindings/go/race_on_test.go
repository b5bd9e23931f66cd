//go:build race

package surgewall

const raceEnabled = true
