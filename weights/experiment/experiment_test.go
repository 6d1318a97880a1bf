package experiment

import "testing"

func TestShellJoin(t *testing.T) {
	got := ShellJoin([]string{"compare", "-ablate-weights", "1,1,1,1 1,1,1,3", "-note", "it's", ""})
	want := `compare -ablate-weights '1,1,1,1 1,1,1,3' -note 'it'\''s' ''`
	if got != want {
		t.Fatalf("shellJoin = %s; want %s", got, want)
	}
}
