// Command wrongfield does not compile, on purpose: a misspelt field of an
// event type is a compile error. TestMisspeltFieldDoesNotCompile builds it.
package main

import (
	"fmt"

	"github.com/heraldhq/herald/oih"
)

func main() {
	fmt.Println(oih.IAMUserCreated{ID: "u-1", UserName: "jane@example.com"})
}
