package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/lib/pq"
)

// pgCluster is a private Postgres cluster in a folder of its own, run as
// the postgres user (initdb refuses root) and reachable on 127.0.0.1 only.
type pgCluster struct {
	bin  string // folder of initdb and pg_ctl
	dir  string // owned by the postgres user
	data string
	port int
	user string // OS user the server runs as; "" is the current one
}

// startPostgres makes and starts a cluster under parent.
func startPostgres(ctx context.Context, parent string) (*pgCluster, error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			bins = []string{p}
		} else {
			return nil, fmt.Errorf("initdb not found (install postgresql)")
		}
	}
	sort.Slice(bins, func(i, j int) bool { return pgVersion(bins[i]) < pgVersion(bins[j]) })
	pg := &pgCluster{bin: filepath.Dir(bins[len(bins)-1]), dir: filepath.Join(parent, "pg")}
	pg.data = filepath.Join(pg.dir, "data")
	if err := os.MkdirAll(pg.dir, 0o755); err != nil {
		return nil, err
	}
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs a postgres user to run Postgres as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(pg.dir, uid, gid); err != nil {
			return nil, err
		}
		pg.user = "postgres"
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	pg.port = port
	if out, err := pg.run(ctx, filepath.Join(pg.bin, "initdb"), "-D", pg.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"); err != nil {
		return pg, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	if out, err := pg.ctl(ctx, "start"); err != nil {
		return pg, fmt.Errorf("pg_ctl start: %v\n%s", err, out)
	}
	db, err := sql.Open("postgres", pg.dsn("postgres"))
	if err != nil {
		return pg, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE DATABASE followupd`); err != nil {
		return pg, fmt.Errorf("create database: %w", err)
	}
	return pg, nil
}

// pgVersion orders /usr/lib/postgresql/N/bin/initdb by N.
func pgVersion(path string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return n
}

func (pg *pgCluster) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=5", pg.port, db)
}

// run runs a Postgres program as the cluster's user.
func (pg *pgCluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if pg.user != "" {
		args = append([]string{"-u", pg.user, "--", name}, args...)
		name = "runuser"
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = pg.dir
	return cmd.CombinedOutput()
}

// ctl runs pg_ctl ACTION with the server options. fsync is off (the
// machine does not crash in this test; the server does, and its WAL in the
// page cache survives that), synchronous_commit stays on.
func (pg *pgCluster) ctl(ctx context.Context, action string, extra ...string) ([]byte, error) {
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c fsync=off -c max_connections=200", pg.port, pg.dir)
	args := append([]string{"-D", pg.data, "-l", filepath.Join(pg.dir, "postgres.log"), "-w", "-t", "60", "-o", opts}, extra...)
	return pg.run(ctx, filepath.Join(pg.bin, "pg_ctl"), append(args, action)...)
}

// restart stops the server at once, as a crash would (every client sees
// its connection end; recovery replays the WAL), and starts it again.
func (pg *pgCluster) restart(ctx context.Context) error {
	if out, err := pg.ctl(ctx, "restart", "-m", "immediate"); err != nil {
		return fmt.Errorf("pg_ctl restart: %v\n%s", err, out)
	}
	return nil
}

// stop stops the server (with its own deadline: it runs during cleanup)
// and removes the folder.
func (pg *pgCluster) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := os.Stat(filepath.Join(pg.data, "postmaster.pid")); err == nil {
		if out, err := pg.ctl(ctx, "stop", "-m", "immediate"); err != nil {
			logf("pg_ctl stop: %v\n%s", err, out)
		}
	}
	_ = os.RemoveAll(pg.dir)
}

// logTail is the end of the server's log.
func (pg *pgCluster) logTail() string {
	return tail(filepath.Join(pg.dir, "postgres.log"), 3000)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail is the last n bytes of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(data) > n {
		data = data[len(data)-n:]
		if i := strings.IndexByte(string(data), '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	return string(data)
}
