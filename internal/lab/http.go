package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// HTTPOptions configures a test HTTP server on a host.
type HTTPOptions struct {
	// Port is the TCP port, on every address of the host (so also on a
	// VIP on lo); 0 means 80.
	Port int
	// Body is the response to every request; empty means the host's
	// name and a newline, so a traffic test can tell real servers apart.
	Body string
}

func (o HTTPOptions) withDefaults(h *Host) HTTPOptions {
	if o.Port == 0 {
		o.Port = 80
	}
	if o.Body == "" {
		o.Body = h.Name + "\n"
	}
	return o
}

// HostHeader is the response header that names the host that answered.
const HostHeader = "X-Lab-Host"

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 10 * time.Second

// StartNginx runs Debian's nginx in the host's namespace as one process
// (no daemon, no workers), with its configuration, pid file and temp
// directories in a t.TempDir() and its error and access logs on the
// process's output: it never touches /var/log/nginx or /run/nginx.pid.
// It returns once nginx accepts connections. Every request gets
// opts.Body with the header X-Lab-Host: <host>. Stop the process to take
// the real server down.
func (h *Host) StartNginx(opts HTTPOptions) *Process {
	t := h.lab.t
	t.Helper()
	opts = opts.withDefaults(h)
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Fatalf("lab: starting nginx on %s: %v (install Debian's nginx package)", h.Name, err)
	}
	dir := t.TempDir()
	v, err := h.Sysctl("net.ipv6.conf.all.disable_ipv6")
	ipv6 := err == nil && v == "0"
	if err := writeNginxFiles(dir, h.Name, opts, ipv6); err != nil {
		t.Fatalf("lab: starting nginx on %s: %v", h.Name, err)
	}
	p := h.Start(context.Background(), "nginx",
		"-p", dir+"/", "-c", filepath.Join(dir, "nginx.conf"), "-e", "stderr")
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := h.waitServing(ctx, p, net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port))); err != nil {
		t.Fatalf("lab: starting nginx on %s: %v", h.Name, err)
	}
	return p
}

// writeNginxFiles writes nginx.conf and the body file into dir.
func writeNginxFiles(dir, host string, opts HTTPOptions, ipv6 bool) error {
	www := filepath.Join(dir, "www")
	if err := os.Mkdir(www, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", www, err)
	}
	files := map[string]string{
		filepath.Join(www, "body.txt"):   opts.Body,
		filepath.Join(dir, "nginx.conf"): nginxConfig(dir, host, opts.Port, ipv6),
	}
	for path, content := range files {
		if err := writeNewFile(path, content); err != nil {
			return err
		}
	}
	return nil
}

// writeNewFile creates path (never following a symlink or reusing a
// file) with mode 0600.
func writeNewFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	_, err = io.WriteString(f, content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// nginxConfig renders the configuration of a lab nginx rooted at dir.
// Every path nginx would otherwise take from its build (pid, error log,
// temp directories) is set here; the error log given on the command
// line (-e stderr) covers the time before the file is read.
func nginxConfig(dir, host string, port int, ipv6 bool) string {
	p := func(name string) string { return filepath.Join(dir, name) }
	var b strings.Builder
	fmt.Fprintf(&b, "# nginx for lab host %s, written by lvskit internal/lab\n", host)
	b.WriteString("daemon off;\nmaster_process off;\nworker_processes 1;\n")
	fmt.Fprintf(&b, "pid %s;\n", p("nginx.pid"))
	b.WriteString("error_log stderr notice;\n")
	b.WriteString("events {\n\tworker_connections 512;\n}\n")
	b.WriteString("http {\n")
	b.WriteString("\tlog_format lab '$remote_addr:$remote_port -> $server_addr:$server_port \"$request\" $status';\n")
	b.WriteString("\taccess_log /dev/stderr lab;\n")
	for _, temp := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "\t%s_temp_path %s;\n", temp, p("tmp-"+temp))
	}
	b.WriteString("\tkeepalive_timeout 0;\n\tdefault_type text/plain;\n\tserver_tokens off;\n")
	b.WriteString("\tserver {\n")
	fmt.Fprintf(&b, "\t\tlisten %d;\n", port)
	if ipv6 {
		fmt.Fprintf(&b, "\t\tlisten [::]:%d ipv6only=on;\n", port)
	}
	fmt.Fprintf(&b, "\t\troot %s;\n", p("www"))
	fmt.Fprintf(&b, "\t\tlocation / {\n\t\t\tadd_header %s %s always;\n\t\t\ttry_files /body.txt =500;\n\t\t}\n", HostHeader, host)
	b.WriteString("\t}\n}\n")
	return b.String()
}

// waitServing waits until address accepts connections from the host,
// giving up early if the server process exits.
func (h *Host) waitServing(ctx context.Context, p *Process, address string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	err := h.WaitTCP(ctx, address)
	if err == nil {
		return nil
	}
	select {
	case <-p.Done():
		return fmt.Errorf("%s exited before accepting on %s (%v); output:\n%s", p, address, p.Err(), p.Output())
	default:
		return fmt.Errorf("%w; output of %s:\n%s", err, p, p.Output())
	}
}

// StartGoHTTP serves opts.Body from a Go HTTP server listening in the
// host's namespace: a fallback where nginx is not installed, and a
// server a test can take down and bring back in-process. The listener is
// open when it returns; the lab closes the server at teardown.
func (h *Host) StartGoHTTP(opts HTTPOptions) *http.Server {
	t := h.lab.t
	t.Helper()
	opts = opts.withDefaults(h)
	ln, err := h.Listen("tcp", net.JoinHostPort("", strconv.Itoa(opts.Port)))
	if err != nil {
		t.Fatalf("lab: starting Go HTTP server on %s: %v", h.Name, err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set(HostHeader, h.Name)
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, opts.Body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	srv.SetKeepAlivesEnabled(false)
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Logf("lab: Go HTTP server on %s: %v", h.Name, err)
		}
	}()
	h.lab.onTeardown(func() {
		srv.Close()
		<-served
	})
	return srv
}

// HTTPClient returns a client whose connections are dialled from the
// host's namespace, one connection per request (so that every request
// is scheduled by IPVS anew). Use IP addresses in URLs.
func (h *Host) HTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:       h.DialContext,
			DisableKeepAlives: true,
		},
		Timeout: 30 * time.Second,
	}
}

// HTTPGet fetches url from the host's namespace and returns the body;
// a status other than 200 is an error.
func (h *Host) HTTPGet(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("fetching %s from %s: %w", url, h.Name, err)
	}
	resp, err := h.HTTPClient().Do(req)
	if err != nil {
		return "", fmt.Errorf("fetching %s from %s: %w", url, h.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("reading %s from %s: %w", url, h.Name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("fetching %s from %s: status %s", url, h.Name, resp.Status)
	}
	return string(body), nil
}
