package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/daemon"
	"github.com/followupd/followupd/store"
	"github.com/followupd/followupd/templates"
)

// cmdCheck checks the configuration and everything it refers to, without
// changing anything: templates, files, and the database's reachability and schema.
func cmdCheck(e *env, args []string) (err error) {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	if _, err := e.parseFlags(fs, args, ""); err != nil {
		return err
	}
	c, err := e.loadConfig()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "config %s: %d accounts, %d stages, %d sequences, %d rules\n",
		c.File, len(c.Accounts), len(c.Stages), len(c.Sequences), len(c.Rules))

	if err := checkTemplates(e, c); err != nil {
		return err
	}
	rt, err := daemon.NewRuntime(c)
	if err != nil {
		return err
	}

	var fields map[string]string
	defer func() {
		if err == nil {
			err = checkRender(e, rt, fields)
		}
	}()
	switch c.Database.Driver {
	case "sqlite":
		path := c.DatabaseDSN()
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			dir := filepath.Dir(path)
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				return fmt.Errorf("database.path: folder %s does not exist", dir)
			}
			fmt.Fprintf(e.stdout, "database: sqlite %s does not exist yet; it is created on first use\n", path)
			return nil
		}
		fallthrough
	default:
		s, err := store.Open(e.ctx, store.Options{Driver: c.Database.Driver, DSN: c.DatabaseDSN()})
		if err != nil {
			return err
		}
		defer s.Close()
		cur, latest, err := s.SchemaStatus(e.ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "database: %s reachable, schema version %d of %d\n", c.Database.Driver, cur, latest)
		fields = knownCustomFields(e, s)
	}
	return nil
}

// checkTemplates parses the templates folder and lints every template a
// sequence uses; a parse error is fatal, a lint finding a warning.
func checkTemplates(e *env, c *config.Config) error {
	set, err := templates.Load(os.DirFS(c.TemplatesDir()))
	if err != nil {
		return prefixTemplateErrors(c.TemplatesDir(), err)
	}
	used := map[string]bool{}
	for _, s := range c.Sequences {
		for _, st := range s.Steps {
			used[st.Template] = true
			for _, v := range st.Variants {
				used[v] = true
			}
		}
	}
	warnings := 0
	for _, name := range sortedKeys(used) {
		for _, w := range set.Lint(name) {
			warnings++
			fmt.Fprintf(e.stderr, "warning: %s:%d:%d: %s\n", filepath.Join(c.TemplatesDir(), w.File), w.Line, w.Col, w.Msg)
		}
	}
	fmt.Fprintf(e.stdout, "templates %s: %d templates, %d used by sequences, %d warnings\n", c.TemplatesDir(), len(set.Names()), len(used), warnings)
	return nil
}

// prefixTemplateErrors makes template errors' file names relative to the
// working directory, so FILE:LINE:COL opens in an editor.
func prefixTemplateErrors(dir string, err error) error {
	var es templates.Errors
	if !errors.As(err, &es) {
		return err
	}
	out := make(config.Errors, len(es))
	for i, te := range es {
		out[i] = config.Error{File: filepath.Join(dir, te.File), Pos: config.Pos{Line: te.Line, Col: te.Col}, Msg: te.Msg}
	}
	return out
}

// checkRender renders every step for a sample and an email-only contact.
func checkRender(e *env, rt *daemon.Runtime, fields map[string]string) error {
	if errs := rt.CheckRender(fields); len(errs) > 0 {
		return errs
	}
	fmt.Fprintf(e.stdout, "every sequence step renders for a full sample contact and for one with only an email\n")
	return nil
}
