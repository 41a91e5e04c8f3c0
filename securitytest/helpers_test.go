// Package securitytest holds cross-package security tests: they run the real
// components (the HTTP server over a real store, the outbox and the inbox
// against in-process SMTP and IMAP servers, the whole daemon) and check the
// promises followupd makes about credentials, tokens, limits, SQL, mail
// headers and secrets.
package securitytest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/store/storetest"
)

var bg = context.Background()

// newStore opens a fresh, migrated SQLite store closed when the test ends.
func newStore(t *testing.T) *store.Store {
	t.Helper()
	return storetest.Open(t, storetest.Fresh(t, store.DialectSQLite))
}

// selfSigned returns a server TLS config with a fresh self-signed
// certificate for 127.0.0.1 that no client trusts.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// proxy forwards TCP connections to target and records what clients send.
// With serverTLS set it terminates TLS first (a TLS front for a plaintext
// test server) and counts the handshakes that completed.
type proxy struct {
	ln        net.Listener
	target    string
	serverTLS *tls.Config

	mu         sync.Mutex
	fromClient bytes.Buffer
	handshakes int
	conns      int
	wg         sync.WaitGroup
}

func startProxy(t *testing.T, target string, serverTLS *tls.Config) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, serverTLS: serverTLS}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() (string, int) {
	a := p.ln.Addr().(*net.TCPAddr)
	return "127.0.0.1", a.Port
}

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns++
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

func (p *proxy) handle(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if p.serverTLS != nil {
		tc := tls.Server(c, p.serverTLS)
		if err := tc.Handshake(); err != nil {
			return
		}
		p.mu.Lock()
		p.handshakes++
		p.mu.Unlock()
		c = tc
	}
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	_ = up.SetDeadline(time.Now().Add(20 * time.Second))
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(c, up)
		_ = c.Close()
		close(done)
	}()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			p.mu.Lock()
			p.fromClient.Write(buf[:n])
			p.mu.Unlock()
			if _, werr := up.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = up.Close()
	<-done
}

// sent is everything clients sent through the proxy (after TLS, when it
// terminates TLS).
func (p *proxy) sent() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fromClient.String()
}

func (p *proxy) stats() (conns, handshakes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns, p.handshakes
}

// waitFor polls cond until it holds or 15 s have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var msgSeq int

// queueMessage stores a contact, an enrollment and a due outbound message
// for account "main", as the scheduler would.
func queueMessage(t *testing.T, st *store.Store, email string) store.MessageOut {
	t.Helper()
	cid, err := st.CreateContact(bg, store.Contact{Email: email, FirstName: "Jo"})
	if err != nil {
		t.Fatalf("CreateContact: %v", err)
	}
	eid, err := st.CreateEnrollment(bg, store.Enrollment{ContactID: cid, Sequence: "intro", Account: "main"})
	if err != nil {
		t.Fatalf("CreateEnrollment: %v", err)
	}
	msgSeq++
	now := time.Now().UTC()
	m := store.MessageOut{
		EnrollmentID: eid, Step: 0, ContactID: cid, Account: "main",
		MessageID: fmt.Sprintf("sec%d.%d@seller.test", msgSeq, now.UnixNano()),
		Subject:   "Quick question", Sequence: "intro", Template: "first",
		ToAddr: email, ToName: "Jo", FromAddr: "sam@seller.test", FromName: "Sam Seller",
		BodyText:       "Hi Jo,\r\n\r\nShall we talk?\r\n",
		UnsubscribeURL: "https://followup.example.com/u/tok",
		NextAttemptAt:  &now,
	}
	id, err := st.InsertMessageOut(bg, m)
	if err != nil {
		t.Fatalf("InsertMessageOut: %v", err)
	}
	m, err = st.MessageOutByID(bg, id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
