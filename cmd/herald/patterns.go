package main

import (
	"fmt"

	"github.com/heraldhq/herald/catalog"
)

// uncatalogued says, for a topic pattern that matches no catalogued event,
// that it does and which name is closest; "" when it matches one. publish
// refuses an unknown name the same way (catalog.Validate); the commands
// that take patterns use this to catch a typo that would otherwise record
// or print nothing, silently.
func uncatalogued(cat *catalog.Catalog, pattern string) string {
	if len(cat.Match(pattern)) > 0 {
		return ""
	}
	if s, ok := cat.Suggest(pattern); ok {
		return fmt.Sprintf("%q matches no catalogued event: did you mean %s?", pattern, s)
	}
	return fmt.Sprintf("%q matches no catalogued event (herald catalog lists them)", pattern)
}
