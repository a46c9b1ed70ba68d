//go:build race

package httpapi

// raceDetector: the race detector multiplies the memory of every
// allocation, so RSS measured under it is not the server's.
const raceDetector = true
