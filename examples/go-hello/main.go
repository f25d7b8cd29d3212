// hello prints a greeting; the example image's whole payload.
package main

import (
	"fmt"
	"os"
)

func greeting(name string) string {
	if name == "" {
		name = "world"
	}
	return fmt.Sprintf("Hello, %s! (built by hoist)", name)
}

func main() {
	fmt.Println(greeting(os.Getenv("NAME")))
}
