//go:build !race

package aggregate

// raceDetector says the tests run with -race.
const raceDetector = false
