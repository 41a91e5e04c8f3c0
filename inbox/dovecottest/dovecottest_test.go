package dovecottest

import (
	"fmt"
	"testing"
	"time"
)

func msg(i int) []byte {
	return fmt.Appendf(nil, "From: bob@example.org\r\nTo: alice@example.test\r\nSubject: m%d\r\nMessage-ID: <m%d@example.org>\r\n\r\nbody %d\r\n", i, i, i)
}

func TestDovecot(t *testing.T) {
	d := Start(t)
	d.Deliver(d.Username, msg(1))
	uid := d.Append("INBOX", msg(2), time.Now().AddDate(0, 0, -40))
	if got := d.UIDs("INBOX"); len(got) != 2 || got[1] != uid {
		t.Fatalf("UIDs = %v, appended uid %d", got, uid)
	}
	if n := d.Seen("INBOX"); n != 0 {
		t.Errorf("Seen = %d", n)
	}
	uv := d.UIDValidity("INBOX")
	if nv := d.ChangeUIDValidity("INBOX"); nv == uv {
		t.Errorf("UIDVALIDITY unchanged: %d", nv)
	}
	if n := d.Count("INBOX"); n != 2 {
		t.Errorf("Count after the UIDVALIDITY change = %d", n)
	}
	d.DropConnections()
	d.Restart()
	d.Deliver(d.Username, msg(3))
	if n := d.Count("INBOX"); n != 3 {
		t.Errorf("Count after restart = %d", n)
	}
	if n := d.Count("Sent"); n != 0 {
		t.Errorf("Sent = %d", n)
	}
}
