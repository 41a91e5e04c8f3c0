package inbox

import (
	"context"
	"fmt"
	"time"
)

// waitForNews returns when the folders should be read again: new mail was
// announced while idling, the IDLE was due for renewal, or the poll
// interval passed. An error means the connection is unusable.
func (w *Watcher) waitForNews(ctx context.Context, c *conn) error {
	if !c.idle {
		return w.pause(ctx, c, w.imap.PollInterval.Std())
	}
	// Mail announced while the last pass ran: read again before idling.
	select {
	case <-w.news:
		return nil
	default:
	}
	if c.selected != w.idleName {
		if _, err := c.examine(ctx, w.idleName); err != nil {
			return err
		}
	}
	period := w.o.IdleRefresh
	if len(w.folders) > 1 {
		period = min(period, w.imap.PollInterval.Std()) // the other folders are polled
	}

	var idle interface {
		Close() error
		Wait() error
	}
	err := c.guard(ctx, func(func()) error {
		cmd, err := c.client.Idle()
		if err == nil {
			idle = cmd
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("inbox: IDLE: %w", err)
	}
	t := time.NewTimer(period)
	defer t.Stop()
	renew := false
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.client.Closed():
		return errConnClosed
	case <-w.news:
	case <-t.C:
		renew = true
	}
	// DONE, then the server's OK; a server that does not answer in time is
	// a dead connection.
	err = c.guard(ctx, func(func()) error {
		if err := idle.Close(); err != nil {
			return err
		}
		return idle.Wait()
	})
	if err != nil {
		return fmt.Errorf("inbox: ending IDLE: %w", err)
	}
	if renew {
		// The watchdog: an IDLE that ended cleanly can still sit on a
		// half-open connection that only a round trip reveals.
		if err := c.guard(ctx, func(func()) error { return c.client.Noop().Wait() }); err != nil {
			return fmt.Errorf("inbox: NOOP: %w", err)
		}
	}
	return nil
}
