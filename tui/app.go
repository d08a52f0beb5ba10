package tui

import (
	"context"
	"fmt"
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
