package imaptest

import (
	"testing"
)

func TestWithoutIdle(t *testing.T) {
	for in, want := range map[string]string{
		"* CAPABILITY IMAP4rev1 SASL-IR IDLE UNSELECT\r\n":                        "* CAPABILITY IMAP4rev1 SASL-IR UNSELECT\r\n",
		"* CAPABILITY IMAP4rev1 IDLE\r\n":                                         "* CAPABILITY IMAP4rev1\r\n",
		"A1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n":                         "A1 OK [CAPABILITY IMAP4rev1] Logged in\r\n",
		"* 3 FETCH (FLAGS ())\r\n* CAPABILITY IMAP4rev1 IDLE ENABLE\r\nA2 OK\r\n": "* 3 FETCH (FLAGS ())\r\n* CAPABILITY IMAP4rev1 ENABLE\r\nA2 OK\r\n",
		"* OK IDLE is fine here\r\n":                                              "* OK IDLE is fine here\r\n",
	} {
		if got := string(withoutIdle([]byte(in))); got != want {
			t.Errorf("withoutIdle(%q) = %q, want %q", in, got, want)
		}
	}
}
