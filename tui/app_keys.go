package tui

// The keys: what each does to the views, the filter prompt, sorting, paging
// the connections and saving. All of it runs on the UI goroutine.

import (
	"io"
	"strings"

	"github.com/gdamore/tcell/v2"
)

// keys handles the keys that mean the same in every view.
func (a *App) keys(ev *tcell.EventKey) *tcell.EventKey {
	if a.filtering {
		return ev // the input field has them
	}
	if a.message != "" {
		a.message = "" // a key answers the last message
		a.updateFooter()
	}
	if a.helpShown {
		if ev.Key() == tcell.KeyEscape || ev.Rune() == '?' || ev.Rune() == 'q' {
			a.toggleHelp()
		}
		return nil
	}
	switch ev.Key() {
	case tcell.KeyEscape:
		a.goBack()
		return nil
	case tcell.KeyCtrlC:
		a.tv.Stop()
		return nil
	}
	switch ev.Rune() {
	case 'q':
		a.tv.Stop()
	case '?':
		a.toggleHelp()
	case 'p':
		a.paused = !a.paused
		a.coll.SetPaused(a.paused)
		if !a.paused {
			a.coll.Refresh()
		}
		a.updateFooter()
	case 'r':
		a.coll.Refresh()
	case 's', 'S':
		a.sortKey(ev.Rune() == 'S')
	case '/':
		a.startFilter()
	case 'c':
		a.openConns()
	case 'w':
		a.save()
	default:
		return ev
	}
	return nil
}

func (a *App) toggleHelp() {
	a.helpShown = !a.helpShown
	if a.helpShown {
		a.pages.ShowPage("help")
	} else {
		a.pages.HidePage("help")
		a.focusView()
	}
}

func (a *App) focusView() {
	switch a.view {
	case viewServices:
		a.tv.SetFocus(a.services)
	case viewServers:
		a.tv.SetFocus(a.servers)
	case viewConns:
		a.tv.SetFocus(a.conns)
	}
}

func (a *App) show(v viewID) {
	if v != a.view {
		a.back = append(a.back, a.view)
	}
	a.switchTo(v)
}

func (a *App) switchTo(v viewID) {
	a.view = v
	name := map[viewID]string{viewServices: "services", viewServers: "servers", viewConns: "conns"}[v]
	a.pages.SwitchToPage(name)
	if a.helpShown {
		a.pages.ShowPage("help")
	}
	if v == viewConns {
		a.coll.SetQuery(a.query)
	} else {
		a.coll.SetQuery(ConnQuery{}) // no page: the table is only aggregated
	}
	a.focusView()
	a.render()
	a.updateFooter()
}

func (a *App) goBack() {
	if len(a.back) == 0 {
		return
	}
	v := a.back[len(a.back)-1]
	a.back = a.back[:len(a.back)-1]
	a.switchTo(v)
}

func (a *App) drillInto(row int) {
	if row < 1 || row-1 >= len(a.svcKeys) {
		return
	}
	a.drill = a.svcKeys[row-1]
	a.servers.Select(1, 0)
	a.show(viewServers)
}

// connsOfServer opens the connection view filtered to one real server
// of the drilled-in service.
func (a *App) connsOfServer(row int) {
	s := a.frame.Snap.FindService(a.drill)
	if s == nil || row < 1 || row-1 >= len(s.RealServers) {
		return
	}
	r := s.RealServers[row-1]
	text := "rs=" + r.Key().String()
	if !a.drill.IsFWMark() {
		text = "vip=" + addrPortString(a.drill.Address, a.drill.Port) + " " + text
	}
	a.setConnFilter(text)
	a.show(viewConns)
}

func (a *App) openConns() {
	if a.view == viewConns {
		return
	}
	if a.view == viewServers && !a.drill.IsFWMark() {
		a.setConnFilter("vip=" + addrPortString(a.drill.Address, a.drill.Port))
	} else if a.view == viewServices {
		a.setConnFilter("")
	}
	a.show(viewConns)
}

// setConnFilter sets the connection view's filter from its text, back at
// the first row; false (and a flash saying why) when the text is not a
// filter.
func (a *App) setConnFilter(text string) bool {
	f, err := ParseConnFilter(text)
	if err != nil {
		a.flash("filter: "+err.Error(), Alert)
		return false
	}
	a.query.Filter = f
	a.query.Offset = 0
	a.conns.Select(1, 0)
	return true
}

func (a *App) sortKey(reverse bool) {
	switch a.view {
	case viewServices:
		if reverse {
			a.svcDesc = !a.svcDesc
		} else {
			a.svcSort = (a.svcSort + 1) % numServiceColumns
			a.svcDesc = false
		}
		a.render()
	case viewConns:
		if reverse {
			a.query.Desc = !a.query.Desc
		} else {
			a.query.Sort = (a.query.Sort + 1) % numConnColumns
			a.query.Desc = false
		}
		a.query.Offset = 0
		a.coll.SetQuery(a.query)
	}
	a.updateFooter()
}

func (a *App) startFilter() {
	if a.view == viewServers {
		return
	}
	a.filtering = true
	text := a.svcFilter
	if a.view == viewConns {
		text = a.query.Filter.Text
	}
	a.filter.SetText(text)
	a.layout.ResizeItem(a.filter, 1, 0)
	a.tv.SetFocus(a.filter)
}

func (a *App) filterDone(key tcell.Key) {
	text := a.filter.GetText()
	a.filtering = false
	a.layout.ResizeItem(a.filter, 0, 0)
	a.focusView()
	if key != tcell.KeyEnter {
		return // Esc: keep the old filter
	}
	switch a.view {
	case viewServices:
		a.svcFilter = strings.TrimSpace(text)
		a.services.Select(1, 0)
		a.render()
	case viewConns:
		if !a.setConnFilter(text) {
			return
		}
		a.coll.SetQuery(a.query)
	}
	a.updateFooter()
}

func (a *App) flash(msg string, lvl Level) {
	a.message, a.messageLvl = msg, lvl
	a.updateFooter()
}

// connKeys pages the connection view: moving past the first or last row
// of the page fetches the next page; only one page is ever held.
func (a *App) connKeys(ev *tcell.EventKey) *tcell.EventKey {
	if a.frame == nil || a.frame.Snap.Conns == nil {
		return ev
	}
	p := a.frame.Snap.Conns
	row, _ := a.conns.GetSelection()
	limit := max(1, a.query.Limit)
	move := func(offset, sel int) *tcell.EventKey {
		last := max(0, p.Matched-1)
		offset = max(0, min(offset, last))
		if offset != a.query.Offset {
			a.query.Offset = offset
			a.conns.Select(max(1, sel), 0)
			a.coll.SetQuery(a.query)
		}
		return nil
	}
	down := ev.Key() == tcell.KeyDown || ev.Rune() == 'j'
	up := ev.Key() == tcell.KeyUp || ev.Rune() == 'k'
	switch {
	case down && row >= len(p.Rows) && p.Offset+len(p.Rows) < p.Matched:
		return move(p.Offset+limit, 1)
	case up && row <= 1 && p.Offset > 0:
		return move(p.Offset-limit, limit)
	case ev.Key() == tcell.KeyPgDn && p.Offset+len(p.Rows) < p.Matched:
		return move(p.Offset+limit, 1)
	case ev.Key() == tcell.KeyPgUp && p.Offset > 0:
		return move(p.Offset-limit, 1)
	case ev.Key() == tcell.KeyHome || ev.Rune() == 'g':
		return move(0, 1)
	case ev.Key() == tcell.KeyEnd || ev.Rune() == 'G':
		return move(max(0, p.Matched-limit), limit)
	}
	return ev
}

// fitConnPage sizes the connection page to the rows the view shows.
func (a *App) fitConnPage() {
	if a.view != viewConns {
		return
	}
	_, _, _, h := a.conns.GetInnerRect()
	if want := max(1, h-1); want != a.query.Limit {
		a.query.Limit = want
		a.coll.SetQuery(a.query)
	}
}

// save writes the current frame as a /proc tree, off the UI goroutine.
func (a *App) save() {
	if a.frame == nil {
		a.flash("nothing to save yet", Warn)
		return
	}
	f := a.frame
	a.flash("saving...", Plain)
	// Run waits for a save in flight before it returns.
	a.saves.Go(func() {
		var conns io.ReadCloser
		if f.Snap.HaveConns {
			c, err := a.opts.Source.OpenConnTable()
			if err == nil {
				conns = c
				defer c.Close()
			}
		}
		var r io.Reader
		if conns != nil {
			r = conns
		}
		dir, err := Save(f, r, SaveOptions{Dir: a.opts.SaveDir})
		a.tv.QueueUpdateDraw(func() {
			if err != nil {
				a.flash(err.Error(), Alert)
				return
			}
			a.flash("saved, replay with: lvstop --proc "+dir, Good)
		})
	})
}
