// Package dovecottest runs a real Dovecot (IMAP and LMTP) for tests, from a
// temporary folder with its own configuration, ports and mail store.
//
// Dovecot comes from Debian's dovecot-imapd and dovecot-lmtpd packages;
// without them Start skips the test.
package dovecottest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"github.com/followupd/followupd/config"
)

// Binary is where Debian installs Dovecot.
const Binary = "/usr/sbin/dovecot"

// SkipMessage is the reason given when Dovecot is missing.
const SkipMessage = "dovecot not installed: Dovecot tests skipped; .ci/run installs dovecot-imapd dovecot-lmtpd"

// Dovecot is a running Dovecot with one user.
type Dovecot struct {
	Host     string
	IMAPPort int
	LMTPPort int
	Username string
	Password string

	t                testing.TB
	mailUID, mailGID int
	dir              string
	conf             string

	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan struct{} // closed when cmd has exited
}

// Available reports whether the Dovecot binary is installed.
func Available() bool {
	_, err := os.Stat(Binary)
	return err == nil
}

// Start starts Dovecot, stopped and removed when the test ends. It skips
// the test when Dovecot is not installed.
func Start(t testing.TB) *Dovecot {
	t.Helper()
	if !Available() {
		t.Skip(SkipMessage)
	}
	d, err := boot(t)
	if d != nil {
		t.Cleanup(func() {
			d.stop()
			if t.Failed() {
				d.logTail()
			}
			_ = os.RemoveAll(d.dir)
		})
	}
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	return d
}

// New starts Dovecot outside of a test (e.g. in a benchmark harness); the
// caller must Close it. Where a method would fail the test it panics.
func New() (*Dovecot, error) {
	if !Available() {
		return nil, errors.New(SkipMessage)
	}
	d, err := boot(panicTB{})
	if err != nil {
		if d != nil {
			d.Close()
		}
		return nil, fmt.Errorf("dovecottest: %w", err)
	}
	return d, nil
}

// Close stops a Dovecot made with New and removes its folder.
func (d *Dovecot) Close() {
	d.stop()
	_ = os.RemoveAll(d.dir)
}

// panicTB stands for the test of a Dovecot made with New.
type panicTB struct{ testing.TB }

func (panicTB) Helper()                           {}
func (panicTB) Failed() bool                      { return false }
func (panicTB) Logf(format string, args ...any)   { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (panicTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// boot makes the folder and starts Dovecot; d is non-nil once there is a
// folder to remove.
func boot(t testing.TB) (*Dovecot, error) {
	// A short path: Dovecot's sockets live under base_dir, and a Unix
	// socket path is limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "dvt")
	if err != nil {
		return nil, err
	}
	d := &Dovecot{
		Host:     "127.0.0.1",
		Username: "alice@example.test",
		Password: "secret",
		t:        t,
		dir:      dir,
		conf:     filepath.Join(dir, "dovecot.conf"),
	}
	if err := d.prepare(); err != nil {
		return d, err
	}
	// A port picked free can be taken before Dovecot binds it: try again
	// with new ports.
	for attempt := 0; ; attempt++ {
		if err := d.pickPorts(); err != nil {
			return d, err
		}
		if err := d.writeConfig(); err != nil {
			return d, err
		}
		err := d.start()
		if err == nil {
			return d, nil
		}
		if attempt == 2 {
			return d, err
		}
	}
}

// prepare makes the folders and the password file. Mail processes never
// run as root: as root the mail belongs to the "mail" user (or nobody).
func (d *Dovecot) prepare() error {
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 65534, 65534
		for _, name := range []string{"mail", "nobody"} {
			if u, err := user.Lookup(name); err == nil {
				uid, _ = strconv.Atoi(u.Uid)
				gid, _ = strconv.Atoi(u.Gid)
				break
			}
		}
	}
	mail := filepath.Join(d.dir, "mail")
	for _, p := range []string{mail, filepath.Join(d.dir, "run"), filepath.Join(d.dir, "state")} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(d.dir, 0o755); err != nil {
		return err
	}
	if os.Getuid() == 0 {
		if err := os.Chown(mail, uid, gid); err != nil {
			return err
		}
	}
	passwd := fmt.Sprintf("%s:{PLAIN}%s::::::\n", d.Username, d.Password)
	if err := os.WriteFile(filepath.Join(d.dir, "passwd"), []byte(passwd), 0o644); err != nil {
		return err
	}
	d.mailUID, d.mailGID = uid, gid
	return nil
}

func (d *Dovecot) pickPorts() error {
	var ports [2]int
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		defer l.Close()
	}
	d.IMAPPort, d.LMTPPort = ports[0], ports[1]
	return nil
}

func (d *Dovecot) writeConfig() error {
	users := ""
	if os.Getuid() != 0 {
		// Unprivileged: every Dovecot process runs as the current user.
		u, err := user.Current()
		if err != nil {
			return err
		}
		users = fmt.Sprintf("default_internal_user = %s\ndefault_login_user = %s\n", u.Username, u.Username)
	}
	conf := fmt.Sprintf(`# written by dovecottest
protocols = imap lmtp
listen = 127.0.0.1
base_dir = %[1]s/run
state_dir = %[1]s/state
instance_name = dovecottest-%[2]d
log_path = %[1]s/dovecot.log
info_log_path = %[1]s/dovecot.log
%[6]sssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5
first_valid_uid = 1
first_valid_gid = 1
mail_max_userip_connections = 100
mail_location = maildir:%[1]s/mail/%%d/%%n/Maildir
namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    special_use = \Sent
    auto = create
  }
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/passwd
}
userdb {
  driver = static
  args = uid=%[3]d gid=%[4]d home=%[1]s/mail/%%d/%%n
}
protocol lmtp {
  postmaster_address = postmaster@example.test
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[5]d
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = %[7]d
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
`, d.dir, d.IMAPPort, d.mailUID, d.mailGID, d.IMAPPort, users, d.LMTPPort)
	return os.WriteFile(d.conf, []byte(conf), 0o644)
}

// start runs "dovecot -F -c CONF" and waits until IMAP answers.
func (d *Dovecot) start() error {
	out, err := os.OpenFile(filepath.Join(d.dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(Binary, "-F", "-c", d.conf)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start %s: %w", Binary, err)
	}
	exit := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(exit)
	}()
	d.mu.Lock()
	d.cmd, d.exit = cmd, exit
	d.mu.Unlock()

	// Wait for the condition (an IMAP greeting), with a deadline.
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exit:
			return fmt.Errorf("dovecot exited at start: %s", d.readLogs())
		default:
		}
		if d.greets() {
			return nil
		}
		if time.Now().After(deadline) {
			d.stop()
			return fmt.Errorf("dovecot did not answer on port %d within 15s: %s", d.IMAPPort, d.readLogs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *Dovecot) greets() bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(d.Host, strconv.Itoa(d.IMAPPort)), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "* OK")
}

// stop ends the process group: SIGTERM, then SIGKILL after 5 s.
func (d *Dovecot) stop() {
	d.mu.Lock()
	cmd, exit := d.cmd, d.exit
	d.cmd = nil
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-exit:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-exit
	}
	// Children that outlived the master.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// Restart stops Dovecot and starts it again on the same ports with the same
// mail. Clients see their connections end.
func (d *Dovecot) Restart() {
	d.t.Helper()
	d.stop()
	var err error
	for range 50 { // the ports can linger a moment
		if err = d.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.t.Fatalf("dovecottest: restart: %v", err)
}

func (d *Dovecot) readLogs() string {
	var b bytes.Buffer
	for _, name := range []string{"stdout.log", "dovecot.log"} {
		data, _ := os.ReadFile(filepath.Join(d.dir, name))
		b.Write(data)
	}
	s := b.String()
	if len(s) > 4000 {
		s = "…" + s[len(s)-4000:]
	}
	return s
}

func (d *Dovecot) logTail() {
	d.t.Logf("dovecot logs:\n%s", d.readLogs())
}

// IMAP returns an account's imap section that logs in to this Dovecot
// (plaintext on 127.0.0.1).
func (d *Dovecot) IMAP() *config.IMAP {
	return &config.IMAP{
		Server: config.Server{
			Host:              d.Host,
			Port:              d.IMAPPort,
			TLS:               "none",
			InsecurePlaintext: true,
			Username:          d.Username,
			Password:          config.Secret(d.Password),
			Auth:              "auto",
		},
		Folders:         []string{"INBOX"},
		Lookback:        config.Duration(30 * 24 * time.Hour),
		PollInterval:    config.Duration(time.Minute),
		MaxMessageBytes: 256 << 10,
	}
}

// Deliver hands a message to user's INBOX over LMTP, as an MTA would.
func (d *Dovecot) Deliver(user string, raw []byte) {
	d.t.Helper()
	if err := d.deliver(user, raw); err != nil {
		d.t.Fatalf("dovecottest: deliver over LMTP: %v", err)
	}
}

func (d *Dovecot) deliver(user string, raw []byte) error {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(d.Host, strconv.Itoa(d.LMTPPort)), 5*time.Second)
	if err != nil {
		return err
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return err
	}
	if err := c.SendMail("sender@example.org", []string{user}, bytes.NewReader(raw)); err != nil {
		return err
	}
	return c.Quit()
}

// Append stores a message in a mailbox over IMAP with the given internal
// date (LMTP always stamps now) and returns its UID.
func (d *Dovecot) Append(mailbox string, raw []byte, at time.Time) uint32 {
	d.t.Helper()
	var uid uint32
	err := d.withClient(func(c *imapclient.Client) error {
		cmd := c.Append(mailbox, int64(len(raw)), &imap.AppendOptions{Time: at})
		if _, err := cmd.Write(raw); err != nil {
			return err
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		data, err := cmd.Wait()
		if err != nil {
			return err
		}
		uid = uint32(data.UID)
		return nil
	})
	if err != nil {
		d.t.Fatalf("dovecottest: append to %s: %v", mailbox, err)
	}
	return uid
}

// UIDs lists a mailbox's UIDs (read-only: EXAMINE).
func (d *Dovecot) UIDs(mailbox string) []uint32 {
	return d.search(mailbox, &imap.SearchCriteria{})
}

// Seen counts the messages of a mailbox that have \Seen.
func (d *Dovecot) Seen(mailbox string) int {
	return len(d.search(mailbox, &imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}))
}

// Count is the number of messages in a mailbox.
func (d *Dovecot) Count(mailbox string) int { return len(d.UIDs(mailbox)) }

// UIDValidity returns the mailbox's UIDVALIDITY.
func (d *Dovecot) UIDValidity(mailbox string) uint32 {
	d.t.Helper()
	var uv uint32
	err := d.withClient(func(c *imapclient.Client) error {
		data, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err == nil {
			uv = data.UIDValidity
		}
		return err
	})
	if err != nil {
		d.t.Fatalf("dovecottest: examine %s: %v", mailbox, err)
	}
	return uv
}

func (d *Dovecot) search(mailbox string, criteria *imap.SearchCriteria) []uint32 {
	d.t.Helper()
	var out []uint32
	err := d.withClient(func(c *imapclient.Client) error {
		if _, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			return err
		}
		data, err := c.UIDSearch(criteria, nil).Wait()
		if err != nil {
			return err
		}
		set, _ := data.All.(imap.UIDSet)
		uids, _ := set.Nums()
		for _, u := range uids {
			out = append(out, uint32(u))
		}
		return nil
	})
	if err != nil {
		d.t.Fatalf("dovecottest: search %s: %v", mailbox, err)
	}
	return out
}

func (d *Dovecot) withClient(fn func(c *imapclient.Client) error) error {
	c, err := imapclient.DialInsecure(net.JoinHostPort(d.Host, strconv.Itoa(d.IMAPPort)), nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(d.Username, d.Password).Wait(); err != nil {
		return err
	}
	if err := fn(c); err != nil {
		return err
	}
	return c.Logout().Wait()
}

// DropConnections disconnects the user's IMAP sessions (doveadm kick).
func (d *Dovecot) DropConnections() {
	d.t.Helper()
	out, err := d.doveadm("kick", d.Username)
	if err != nil && !bytes.Contains(out, []byte("no users kicked")) {
		d.t.Fatalf("dovecottest: doveadm kick: %v: %s", err, out)
	}
}

// ChangeUIDValidity gives a mailbox a new UIDVALIDITY (doveadm mailbox
// update), as a restored or rebuilt mailbox would have. The messages keep
// their content; connected clients are dropped.
func (d *Dovecot) ChangeUIDValidity(mailbox string) uint32 {
	d.t.Helper()
	uv := d.UIDValidity(mailbox) + 1000
	if out, err := d.doveadm("mailbox", "update", "-u", d.Username, "--uid-validity", strconv.FormatUint(uint64(uv), 10), mailbox); err != nil {
		d.t.Fatalf("dovecottest: doveadm mailbox update: %v: %s", err, out)
	}
	if got := d.UIDValidity(mailbox); got != uv {
		d.t.Fatalf("dovecottest: UIDVALIDITY of %s is %d after the update, want %d", mailbox, got, uv)
	}
	d.DropConnections()
	return uv
}

func (d *Dovecot) doveadm(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bin := filepath.Join(filepath.Dir(Binary), "..", "bin", "doveadm")
	if _, err := os.Stat(bin); errors.Is(err, os.ErrNotExist) {
		bin = "doveadm"
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"-c", d.conf}, args...)...)
	return cmd.CombinedOutput()
}
