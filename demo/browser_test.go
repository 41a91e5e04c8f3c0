package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds Debian's Chromium; .ci/run installs it.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium not installed: browser test skipped; .ci/run installs it (apt-get install chromium)")
	return ""
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// page is what the dashboard shows: counts per stage and the intro
// sequence's funnel cells, read from the page's data attributes.
type page struct {
	Stages map[string]int
	Funnel map[string]string // "step/metric" → text
}

// TestDashboardInABrowser runs the demo, logs in to the dashboard in
// headless Chromium, and checks that the pipeline and funnel numbers on the
// page are the API's; it saves a screenshot in the test's temp dir.
func TestDashboardInABrowser(t *testing.T) {
	chrome := chromium(t)
	addr := freeAddr(t)
	const token = "browser-test-token-0123456789"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Listen: addr, DayEvery: time.Second, Out: io.Discard, Token: token})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo: %v", err)
		}
	}()
	base := "http://" + addr
	api := func(path string, v any) error {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: %s", path, resp.Status)
		}
		return json.NewDecoder(resp.Body).Decode(v)
	}
	apiState := func() (page, error) {
		var p struct {
			Stages []struct {
				Name  string
				Count int
			}
		}
		var f struct {
			Steps []struct {
				Step                                 int
				Sent, Replied, Bounced, Unsubscribed int
				ReplyRate                            float64 `json:"reply_rate"`
			}
		}
		if err := api("/api/v1/pipeline", &p); err != nil {
			return page{}, err
		}
		if err := api("/api/v1/sequences/intro/funnel", &f); err != nil {
			return page{}, err
		}
		st := page{Stages: map[string]int{}, Funnel: map[string]string{}}
		for _, s := range p.Stages {
			st.Stages[s.Name] = s.Count
		}
		for _, s := range f.Steps {
			k := strconv.Itoa(s.Step) + "/"
			st.Funnel[k+"sent"] = strconv.Itoa(s.Sent)
			st.Funnel[k+"replied"] = strconv.Itoa(s.Replied)
			st.Funnel[k+"bounced"] = strconv.Itoa(s.Bounced)
			st.Funnel[k+"unsubscribed"] = strconv.Itoa(s.Unsubscribed)
			st.Funnel[k+"reply_rate"] = strconv.FormatFloat(s.ReplyRate, 'f', 1, 64) + "%"
		}
		return st, nil
	}
	// Wait until the scripted replies moved the pipeline.
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := apiState()
		if err == nil && st.Stages["prospect"] >= 2 && st.Stages["bounced"] >= 1 && st.Stages["unsubscribed"] >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo's pipeline did not move: %+v %v", st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 1600),
	)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	bctx, tcancel := context.WithTimeout(bctx, 60*time.Second)
	defer tcancel()

	if err := chromedp.Do(bctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), token),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(`#pipeline`)),
	); err != nil {
		t.Fatalf("log in through the browser: %v", err)
	}
	read := func() (page, error) {
		type shown struct {
			Stages map[string]int
			Funnel map[string]string
		}
		// Navigate rather than Reload: chromedp's Reload can miss the
		// load event it waits for and hang until the deadline.
		rctx, rcancel := context.WithTimeout(bctx, 20*time.Second)
		defer rcancel()
		if err := chromedp.Do(rctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`#pipeline`))); err != nil {
			dctx, dcancel := context.WithTimeout(bctx, 5*time.Second)
			defer dcancel()
			loc, _ := chromedp.Run(dctx, chromedp.Location())
			html, _ := chromedp.Run(dctx, chromedp.OuterHTML(chromedp.CSS("html")))
			if len(html) > 600 {
				html = html[:600]
			}
			return page{}, fmt.Errorf("reload the dashboard (page %s: %s): %w", loc, html, err)
		}
		raw, err := chromedp.Run(rctx, chromedp.Evaluate[shown](`(() => {
			const stages = {}, funnel = {};
			document.querySelectorAll('[data-stage][data-count]').forEach(e => { stages[e.dataset.stage] = parseInt(e.dataset.count, 10); });
			document.querySelectorAll('td[data-sequence="intro"][data-metric]').forEach(e => { funnel[e.dataset.step + "/" + e.dataset.metric] = e.textContent.trim(); });
			return {Stages: stages, Funnel: funnel};
		})()`))
		return page(raw), err
	}
	// The demo keeps running: compare the page with API answers taken just
	// before and after it, equal to each other.
	var matched bool
	for i := 0; i < 20 && !matched; i++ {
		before, err1 := apiState()
		shown, err2 := read()
		after, err3 := apiState()
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("reading: %v %v %v", err1, err2, err3)
		}
		if !reflect.DeepEqual(before, after) {
			continue
		}
		for k, v := range before.Funnel {
			if shown.Funnel[k] != v {
				t.Logf("funnel %s: page %q, API %q", k, shown.Funnel[k], v)
			}
		}
		shownFunnel := map[string]string{}
		for k := range before.Funnel {
			shownFunnel[k] = shown.Funnel[k]
		}
		if !reflect.DeepEqual(before.Stages, shown.Stages) || !reflect.DeepEqual(before.Funnel, shownFunnel) {
			t.Fatalf("the page shows other numbers than the API:\npage %+v\napi  %+v", shown, before)
		}
		matched = true
	}
	if !matched {
		t.Fatal("the numbers never held still long enough to compare")
	}
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.TempDir(), "dashboard.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if keep := os.Getenv("FOLLOWUPD_SCREENSHOT"); keep != "" {
		_ = os.WriteFile(keep, png, 0o644)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))
}
