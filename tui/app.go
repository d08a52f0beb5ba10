package tui

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/lvskit/lvskit/director/ipvs"
	"github.com/rivo/tview"
)

// AppOptions configure the TUI.
type AppOptions struct {
	Source   Source
	Interval time.Duration // between snapshots; default 2s
	// Screen is where to draw; nil for the terminal. Tests pass a
	// tcell.SimulationScreen.
	Screen tcell.Screen
	// SaveDir is where the save key writes snapshot trees; default ".".
	SaveDir string
	Logger  *slog.Logger
	Now     func() time.Time
	// Tick replaces the collector's ticker (tests).
	Tick <-chan time.Time
}

type viewID int

const (
	viewServices viewID = iota
	viewServers
	viewConns
)

// App is lvstop's terminal UI. Everything in it below the tview widgets
// belongs to the UI goroutine: frames arrive through QueueUpdateDraw.
type App struct {
	opts  AppOptions
	tv    *tview.Application
	coll  *Collector
	saves sync.WaitGroup // saves in flight

	header   *tview.TextView
	pages    *tview.Pages
	services *tview.Table
	servers  *tview.Table
	conns    *tview.Table
	footer   *tview.TextView
	filter   *tview.InputField
	help     *tview.TextView
	layout   *tview.Flex

	// UI state
	frame      *Frame
	lastErr    error
	view       viewID
	back       []viewID
	drill      ipvs.ServiceKey
	svcKeys    []ipvs.ServiceKey // the services view's rows
	svcSort    ServiceColumn
	svcDesc    bool
	svcFilter  string
	query      ConnQuery
	paused     bool
	helpShown  bool
	filtering  bool
	message    string
	messageLvl Level

	// drawn, when set, is called after every draw (tests wait on it).
	drawn func()
}

// NewApp builds the UI; Run shows it.
func NewApp(opts AppOptions) *App {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SaveDir == "" {
		opts.SaveDir = "."
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &App{opts: opts, tv: tview.NewApplication()}
	a.coll = NewCollector(CollectorOptions{
		Source: opts.Source, Interval: opts.Interval, Tick: opts.Tick, Logger: opts.Logger,
		Publish: func(f *Frame, err error) {
			a.tv.QueueUpdateDraw(func() { a.apply(f, err) })
		},
	})
	if opts.Screen != nil {
		a.tv.SetScreen(opts.Screen)
	}
	a.build()
	return a
}

func newTable() *tview.Table {
	t := tview.NewTable().SetFixed(1, 0).SetSelectable(true, false).SetSeparator(' ')
	t.SetSelectedStyle(tcell.StyleDefault.Reverse(true))
	return t
}

func (a *App) build() {
	a.header = tview.NewTextView().SetWrap(false)
	a.services = newTable()
	a.servers = newTable()
	a.conns = newTable()
	a.footer = tview.NewTextView().SetWrap(false)
	a.filter = tview.NewInputField().SetLabel("/")
	a.filter.SetDoneFunc(a.filterDone)
	a.help = tview.NewTextView().SetText(helpText).SetWrap(false)
	a.help.SetBorder(true).SetTitle(" lvstop keys ")

	a.services.SetSelectedFunc(func(row, _ int) { a.drillInto(row) })
	a.servers.SetSelectedFunc(func(row, _ int) { a.connsOfServer(row) })
	a.conns.SetInputCapture(a.connKeys)

	a.pages = tview.NewPages().
		AddPage("services", a.services, true, true).
		AddPage("servers", a.servers, true, false).
		AddPage("conns", a.conns, true, false).
		AddPage("help", centered(a.help, helpWidth()+4, len(strings.Split(helpText, "\n"))+2), true, false)
	a.layout = tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(a.header, 3, 0, false).
		AddItem(a.pages, 0, 1, true).
		AddItem(a.filter, 0, 0, false).
		AddItem(a.footer, 1, 0, false)
	a.tv.SetRoot(a.layout, true).SetFocus(a.services).EnableMouse(true)
	a.tv.SetInputCapture(a.keys)
	a.tv.SetAfterDrawFunc(func(tcell.Screen) {
		a.fitConnPage()
		if a.drawn != nil {
			a.drawn()
		}
	})
	a.header.SetText("lvstop: reading " + a.opts.Source.String() + " ...")
	a.updateFooter()
}

func centered(p tview.Primitive, w, h int) tview.Primitive {
	return tview.NewFlex().
		AddItem(nil, 0, 1, false).
		AddItem(tview.NewFlex().SetDirection(tview.FlexRow).
			AddItem(nil, 0, 1, false).AddItem(p, h, 0, true).AddItem(nil, 0, 1, false), w, 0, true).
		AddItem(nil, 0, 1, false)
}

const helpText = ` ↑↓ j k      move            PgUp PgDn g G  page, top, end
 Enter       drill into a service; on a real server: its connections
 c           connections (of the service, when drilled in)
 Esc         back
 /           filter: services by text; connections by
             client= vip= rs= state= proto= tmpl=yes|no
             (a bare address, state or protocol works too)
 s  S        sort by the next column; reverse the order
 p           pause / resume refreshing
 r           refresh now
 w           save this snapshot as a /proc tree (lvstop --proc DIR)
 ?           this help
 q           quit`

func helpWidth() int {
	w := 0
	for _, l := range strings.Split(helpText, "\n") {
		w = max(w, len([]rune(l)))
	}
	return w
}

// Run shows the UI until q or ctx ends. It returns once every goroutine
// it started (the collector, the expiry ticker, saves in flight) is done.
func (a *App) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { a.coll.Run(ctx) })
	wg.Go(func() {
		// Expiry counts down between snapshots; quit when ctx ends.
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				a.tv.Stop()
				return
			case <-t.C:
				a.tv.QueueUpdateDraw(func() {
					if a.view == viewConns && !a.paused {
						a.renderConns()
					}
				})
			}
		}
	})
	err := a.tv.Run()
	cancel()
	wg.Wait()
	a.saves.Wait()
	return err
}

// apply shows a new frame. UI goroutine only.
func (a *App) apply(f *Frame, err error) {
	if err != nil {
		a.lastErr = err
		a.updateFooter()
		return
	}
	a.lastErr = nil
	// Paused, ticks collect nothing; a frame that still comes was asked
	// for (r, a new page or filter), so it is shown.
	a.frame = f
	a.render()
}

func (a *App) render() {
	if a.frame == nil {
		return
	}
	lines := HeaderLines(a.frame)
	a.header.SetText(strings.Join(lines, "\n"))
	a.layout.ResizeItem(a.header, len(lines), 0)
	a.renderServices()
	a.renderServers()
	a.renderConns()
	a.updateFooter()
}

var levelColor = map[Level]tcell.Color{
	Plain: tcell.ColorDefault,
	Dim:   tcell.ColorGray,
	Good:  tcell.ColorGreen,
	Warn:  tcell.ColorYellow,
	Alert: tcell.ColorRed,
}

// fill replaces a table's cells with a rendered table.
func fill(tb *tview.Table, t Table) {
	// Keep the scroll position; SetOffset also stops tview from pinning
	// the view to the end, which it does after drawing an empty table.
	row, col := tb.GetOffset()
	defer tb.SetOffset(row, col)
	tb.Clear()
	put := func(row int, cells []Cell, header bool) {
		for col, c := range cells {
			cell := tview.NewTableCell(tview.Escape(c.Text)).SetTextColor(levelColor[c.Level])
			if c.Right {
				cell.SetAlign(tview.AlignRight)
			}
			if header {
				cell.SetSelectable(false).SetAttributes(tcell.AttrBold)
			}
			if c.Level == Alert {
				cell.SetAttributes(tcell.AttrBold)
			}
			tb.SetCell(row, col, cell)
		}
	}
	put(0, t.Header, true)
	for i, r := range t.Rows {
		put(i+1, r, false)
	}
}

func (a *App) visibleServices() []*Service {
	svcs := SortedServices(a.frame, a.svcSort, a.svcDesc)
	if a.svcFilter == "" {
		return svcs
	}
	var out []*Service
	needle := strings.ToLower(a.svcFilter)
	for _, s := range svcs {
		hay := strings.ToLower(s.ServiceKey.String() + " " + s.Name + " " + s.Scheduler)
		for _, r := range s.RealServers {
			hay += " " + r.Key().String()
		}
		if strings.Contains(hay, needle) {
			out = append(out, s)
		}
	}
	return out
}

func (a *App) renderServices() {
	row, _ := a.services.GetSelection()
	var keep ipvs.ServiceKey
	if row >= 1 && row-1 < len(a.svcKeys) {
		keep = a.svcKeys[row-1]
	}
	svcs := a.visibleServices()
	a.svcKeys = a.svcKeys[:0]
	for _, s := range svcs {
		a.svcKeys = append(a.svcKeys, s.ServiceKey)
	}
	fill(a.services, ServiceRows(a.frame, svcs))
	sel := 1
	for i, k := range a.svcKeys {
		if k == keep {
			sel = i + 1
		}
	}
	a.services.Select(min(sel, max(1, len(svcs))), 0)
}

func (a *App) renderServers() {
	if a.view != viewServers {
		return
	}
	s := a.frame.Snap.FindService(a.drill)
	if s == nil {
		a.servers.Clear()
		a.servers.SetCell(0, 0, tview.NewTableCell(a.drill.String()+" is gone").SetTextColor(tcell.ColorRed))
		return
	}
	row, _ := a.servers.GetSelection()
	fill(a.servers, RealServerRows(a.frame, s))
	a.servers.SetTitle(" " + s.ServiceKey.String() + " ")
	a.servers.Select(max(1, min(row, len(s.RealServers))), 0)
}

func (a *App) renderConns() {
	if a.view != viewConns || a.frame == nil {
		return
	}
	row, _ := a.conns.GetSelection()
	page := a.frame.Snap.Conns
	fill(a.conns, ConnRows(page, a.frame.Snap.Taken, a.opts.Now()))
	n := 0
	if page != nil {
		n = len(page.Rows)
	}
	a.conns.Select(max(1, min(row, n)), 0)
	a.updateFooter()
}

func (a *App) updateFooter() {
	var parts []string
	if a.message != "" {
		parts = append(parts, a.message) // first: the footer may be cut
	}
	switch a.view {
	case viewServices:
		s := "services"
		if a.frame != nil {
			s += fmt.Sprintf(" (%d)", len(a.svcKeys))
		}
		parts = append(parts, s, "sort "+a.svcSort.String()+arrow(a.svcDesc, a.svcSort != ServiceByKey))
		if a.svcFilter != "" {
			parts = append(parts, "filter "+a.svcFilter)
		}
	case viewServers:
		parts = append(parts, "real servers of "+a.drill.String())
	case viewConns:
		s := "connections"
		if a.frame != nil && a.frame.Snap.Conns != nil {
			p := a.frame.Snap.Conns
			if len(p.Rows) > 0 {
				s += fmt.Sprintf(" %s-%s of %s", groupDigits(uint64(p.Offset+1)), groupDigits(uint64(p.Offset+len(p.Rows))), groupDigits(uint64(p.Matched)))
			} else {
				s += fmt.Sprintf(" 0 of %s", groupDigits(uint64(p.Matched)))
			}
			if p.Matched != p.Scanned {
				s += fmt.Sprintf(" matched (%s entries)", groupDigits(uint64(p.Scanned)))
			}
		}
		parts = append(parts, s, "sort "+a.query.Sort.String()+arrow(a.query.Desc, false))
		if a.query.Filter.Text != "" {
			parts = append(parts, "filter "+a.query.Filter.Text)
		}
	}
	if a.paused {
		parts = append(parts, "PAUSED")
	}
	if a.lastErr != nil {
		parts = append(parts, "error: "+a.lastErr.Error())
	}
	parts = append(parts, "? help  q quit")
	a.footer.SetText(strings.Join(parts, " | "))
	if a.lastErr != nil || a.messageLvl == Alert {
		a.footer.SetTextColor(tcell.ColorRed)
	} else {
		a.footer.SetTextColor(tcell.ColorDefault)
	}
}

func arrow(desc, byValue bool) string {
	if desc != byValue {
		return " ↓"
	}
	return " ↑"
}

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
