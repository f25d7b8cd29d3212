package main

import "testing"

func TestGreeting(t *testing.T) {
	if got := greeting(""); got != "Hello, world! (built by hoist)" {
		t.Fatalf("greeting(\"\") = %q", got)
	}
	if got := greeting("hoist"); got != "Hello, hoist! (built by hoist)" {
		t.Fatalf("greeting(\"hoist\") = %q", got)
	}
}
