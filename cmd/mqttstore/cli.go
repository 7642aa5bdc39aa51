package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mqttstore/mqttstore/cmd/mqttstore/internal/archive"
	"github.com/mqttstore/mqttstore/cmd/mqttstore/internal/tool"
	"github.com/mqttstore/mqttstore/persistence"
)

// Exit statuses.
const (
	exitOK       = 0
	exitProblems = 1 // check found problems
	exitError    = 2
)

// errProblems marks a check that ran and found problems (exit status 1).
var errProblems = tool.ErrProblems

// run executes the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errProblems):
		return exitProblems
	}
	fmt.Fprintln(stderr, "mqttstore:", err)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "mqttstore: interrupted; an import or migrate resumes when the same command is run again")
	}
	return exitError
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	var progress string
	root := &cobra.Command{
		Use:   "mqttstore",
		Short: "Inspect, check, export, import, migrate and compact mqttstore stores",
		Long: `mqttstore works on any store URL the SDK opens: ` + strings.Join(persistence.Drivers(), ", ") + `.
Stop the broker that uses a store before running a command on it.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&progress, "progress", "auto", "progress display: auto (a bar on a terminal, plain lines otherwise), bar, plain, none")
	opts := func(cmd *cobra.Command) (tool.Options, error) {
		switch m := tool.ProgressMode(progress); m {
		case tool.ProgressAuto, tool.ProgressBar, tool.ProgressPlain, tool.ProgressNone:
			return tool.Options{Progress: m, Log: stderr}, nil
		}
		return tool.Options{}, fmt.Errorf("%w: --progress %q: want auto, bar, plain or none", persistence.ErrInvalidArgument, progress)
	}
	root.AddCommand(exportCmd(stdout, opts), importCmd(stdout, opts), migrateCmd(stdout, opts),
		inspectCmd(stdout, opts), checkCmd(stdout, opts), compactCmd(stdout))
	return root
}

type optsFunc func(*cobra.Command) (tool.Options, error)

// output returns the options of a command that prints a report: with --json the
// report is the only output, so no progress is shown.
func (f optsFunc) output(cmd *cobra.Command, asJSON bool) (tool.Options, error) {
	o, err := f(cmd)
	if err == nil && asJSON {
		o.Progress = tool.ProgressNone
	}
	return o, err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printSummary(w io.Writer, title string, s archive.Summary) {
	fmt.Fprintln(w, title)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kind\tcount\tbytes\tdigest\t")
	for _, k := range archive.Keys() {
		d := s[k]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%x\t\n", k, d.Count, d.Bytes, shortSum(d.Sum))
	}
	tw.Flush()
}

func shortSum(b []byte) []byte {
	if len(b) > 8 {
		return b[:8]
	}
	return b
}

func exportCmd(stdout io.Writer, opts optsFunc) *cobra.Command {
	return &cobra.Command{
		Use:   "export URL FILE",
		Short: "Write every record of a store to an archive file (FILE - for stdout)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := opts(cmd)
			if err != nil {
				return err
			}
			info := stdout
			if args[1] == "-" {
				info = cmd.ErrOrStderr()
			}
			tr, err := tool.Export(cmd.Context(), args[0], args[1], stdout, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(info, "exported %d records to %s (sha256 %x)\n", tr.Records, args[1], []byte(tr.SHA256))
			printSummary(info, "contents:", tr.Summary)
			return nil
		},
	}
}

func printCopy(w io.Writer, verb string, rep *tool.CopyReport) {
	fmt.Fprintf(w, "%s: %d records written, %d already present", verb, rep.Written, rep.Skipped)
	if rep.Resumed {
		fmt.Fprint(w, " (resumed)")
	}
	fmt.Fprintln(w)
	if rep.Verified {
		printSummary(w, "verified: both sides hold", rep.Dest)
	}
}

func importCmd(stdout io.Writer, opts optsFunc) *cobra.Command {
	var force, noVerify bool
	c := &cobra.Command{
		Use:   "import FILE URL",
		Short: "Load an archive into a store (an empty one unless --force)",
		Long: `import writes every record of an archive into the store. The store must be empty
unless --force is given; then archive sessions replace the store's sessions of the same
id and archive retained messages replace the store's, and everything else stays.
Interrupted, the same command resumes where it stopped.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := opts(cmd)
			if err != nil {
				return err
			}
			o.Force, o.NoVerify = force, noVerify
			rep, err := tool.Import(cmd.Context(), args[0], args[1], o)
			if err != nil {
				return err
			}
			printCopy(stdout, "imported", rep)
			return nil
		},
	}
	c.Flags().BoolVar(&force, "force", false, "import into a store that is not empty (archive records replace the store's)")
	c.Flags().BoolVar(&noVerify, "no-verify", false, "skip comparing the store's digests with the archive's")
	return c
}

func migrateCmd(stdout io.Writer, opts optsFunc) *cobra.Command {
	var noVerify bool
	c := &cobra.Command{
		Use:   "migrate SRC_URL DST_URL",
		Short: "Copy a store into an empty store of any driver, then verify both",
		Long: `migrate copies every record of SRC_URL into DST_URL, which must be empty, and then
compares the count and content digest of every kind of record on both sides.
Interrupted (Ctrl-C, a kill, a crash), the same command started again resumes from the
progress the destination recorded and finishes correctly.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := opts(cmd)
			if err != nil {
				return err
			}
			o.NoVerify = noVerify
			start := time.Now()
			rep, err := tool.Migrate(cmd.Context(), args[0], args[1], o)
			if err != nil {
				return err
			}
			printCopy(stdout, "migrated", rep)
			fmt.Fprintf(stdout, "done in %s\n", time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	c.Flags().BoolVar(&noVerify, "no-verify", false, "skip the verification pass")
	return c
}

func inspectCmd(stdout io.Writer, opts optsFunc) *cobra.Command {
	var asJSON bool
	var session string
	var retained []string
	var top, limit int
	c := &cobra.Command{
		Use:   "inspect URL",
		Short: "Show totals per kind and the largest queues, one session, or retained messages",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := opts.output(cmd, asJSON)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			switch {
			case cmd.Flags().Changed("session"):
				v, err := tool.InspectSession(ctx, args[0], session, limit)
				if err != nil {
					return fmt.Errorf("session %q: %w", session, err)
				}
				if asJSON {
					return printJSON(stdout, v)
				}
				printSession(stdout, v)
			case len(retained) > 0:
				list, err := tool.InspectRetained(ctx, args[0], retained, limit)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(stdout, list)
				}
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "topic\tqos\tbytes\texpires")
				for _, r := range list {
					fmt.Fprintf(tw, "%q\t%d\t%d\t%s\n", r.Topic, r.QoS, r.Bytes, fmtTime(r.ExpireAt))
				}
				tw.Flush()
			default:
				rep, err := tool.Inspect(ctx, args[0], top, o)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(stdout, rep)
				}
				printInspect(stdout, rep)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().StringVar(&session, "session", "", "show this session in full")
	c.Flags().StringArrayVar(&retained, "retained", nil, "list retained messages matching this topic filter (repeatable)")
	c.Flags().IntVar(&top, "top", 10, "how many of the largest queues to list")
	c.Flags().IntVar(&limit, "limit", 20, "at most this many packets per class (--session) or retained messages (--retained)")
	return c
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func printInspect(w io.Writer, rep *tool.InspectReport) {
	s := rep.Store
	fmt.Fprintf(w, "store: driver %s, schema %d, created %s by SDK %s\n", s.Driver, s.SchemaVersion, fmtTime(s.CreatedAt), s.SDKVersion)
	if rep.UnfinishedCopy {
		fmt.Fprintln(w, "WARNING: an import or migrate into this store did not finish")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kind\tcount\tbytes\t")
	for _, k := range archive.Keys() {
		t := rep.Kinds[k]
		fmt.Fprintf(tw, "%s\t%d\t%s\t\n", k, t.Count, tool.FormatBytes(int64(t.Bytes)))
	}
	fmt.Fprintf(tw, "wills\t%d\t\t\n", rep.Wills)
	tw.Flush()
	if len(rep.Largest) > 0 {
		fmt.Fprintln(w, "largest queues:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "session\tclass\tpackets\tbytes")
		for _, q := range rep.Largest {
			fmt.Fprintf(tw, "%q\t%s\t%d\t%s\n", q.Session, q.Class, q.Packets, tool.FormatBytes(int64(q.Bytes)))
		}
		tw.Flush()
	}
}

func printSession(w io.Writer, v *tool.SessionView) {
	fmt.Fprintf(w, "session %q: created %s, protocol %d\n", v.ID, fmtTime(v.Base.CreatedAt), v.Base.ProtocolVersion)
	if st := v.State; st != nil {
		fmt.Fprintf(w, "state: protocol %d, expiry interval %s, user %q, disconnected %s, user data %d bytes\n",
			st.ProtocolVersion, st.ExpiryInterval, st.Username, fmtTime(st.DisconnectedAt), len(st.UserData))
		if st.Will != nil {
			fmt.Fprintf(w, "will: topic %q, QoS %d, %d bytes, delay %s\n", v.WillTopic, st.Will.QoS, len(st.Will.Data), st.WillDelay)
		}
	}
	if e := v.Expiry; e != nil {
		fmt.Fprintf(w, "deadlines: expire %s, will %s\n", fmtTime(e.ExpireAt), fmtTime(e.WillAt))
	}
	fmt.Fprintf(w, "subscriptions (%d):\n", len(v.Subscriptions))
	for _, s := range v.Subscriptions {
		fmt.Fprintf(w, "  %q qos %d no-local %t rap %t rh %d id %d\n", s.Filter, s.QoS, s.NoLocal, s.RetainAsPublished, s.RetainHandling, s.ID)
	}
	for _, c := range persistence.PacketClasses {
		name := c.String()
		fmt.Fprintf(w, "packets %s (%d):\n", name, v.Counts[name])
		for _, p := range v.Packets[name] {
			fmt.Fprintf(w, "  seq %d id %d qos %d v%d %d bytes topic %q expires %s\n", p.Seq, p.PacketID, p.QoS, p.Protocol, p.Bytes, p.Topic, fmtTime(p.ExpireAt))
		}
	}
}

func checkCmd(stdout io.Writer, opts optsFunc) *cobra.Command {
	var asJSON, repair bool
	var aside string
	c := &cobra.Command{
		Use:   "check URL",
		Short: "Read and decode every record, compare counters and the expiry index; exit 1 if not clean",
		Long: `check reads and decodes every record of the store and compares its counters and its
expiry index with the records. Exit status 0: clean; 1: problems (listed).

With --repair it then moves every record that does not decode into a new aside file
(JSON lines, see ARCHIVE.md; --aside DIR, by default beside a bolt or badger store,
else the working directory), removes those records from the store only once that
file is on disk, recomputes the derived data (counters, indexes) and checks again:
the exit status is that of the second check. Nothing readable is removed, except the
readable records of a session whose own record is broken, which go to the aside
file too. Stop the broker first.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := opts.output(cmd, asJSON)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("aside") && !repair {
				return fmt.Errorf("%w: --aside is only for --repair", persistence.ErrInvalidArgument)
			}
			if repair {
				return runRepair(cmd, stdout, args[0], aside, asJSON, o)
			}
			rep, err := tool.Check(cmd.Context(), args[0], o)
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(stdout, rep); err != nil {
					return err
				}
			} else {
				printCheck(stdout, rep)
			}
			if !rep.Clean() {
				return errProblems
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&repair, "repair", false, "move undecodable records to an aside file, remove them, recompute counters and indexes, check again")
	c.Flags().StringVar(&aside, "aside", "", "directory for the aside file of --repair (default: beside a bolt/badger store, else the working directory)")
	return c
}

func printCheck(w io.Writer, rep *tool.CheckReport) {
	fmt.Fprintf(w, "read %d sessions, %d packets, %d retained messages\n", rep.Sessions, rep.Packets, rep.Retained)
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "%s: %s: %s\n", p.Kind, p.Where, p.Detail)
	}
	if rep.Clean() {
		fmt.Fprintln(w, "clean")
	} else {
		fmt.Fprintf(w, "%d problems\n", len(rep.Problems))
	}
}

func runRepair(cmd *cobra.Command, stdout io.Writer, url, aside string, asJSON bool, o tool.Options) error {
	rep, err := tool.Repair(cmd.Context(), url, aside, o)
	if err != nil {
		if rep != nil && rep.Aside != "" {
			fmt.Fprintf(cmd.ErrOrStderr(), "mqttstore: the records moved so far are in %s\n", rep.Aside)
		}
		return err
	}
	if asJSON {
		if err := printJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout, "before repair:")
		printCheck(stdout, rep.Before)
		if rep.Aside != "" {
			fmt.Fprintf(stdout, "removed %d broken records; %d records saved to %s\n", rep.Removed, rep.Saved, rep.Aside)
		} else {
			fmt.Fprintln(stdout, "no broken records")
		}
		for _, f := range rep.Fixes {
			fmt.Fprintf(stdout, "fixed: %s: %s\n", f.Where, f.Detail)
		}
		fmt.Fprintln(stdout, "after repair:")
		printCheck(stdout, rep.After)
	}
	if !rep.After.Clean() {
		return errProblems
	}
	return nil
}

func compactCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "compact URL",
		Short: "Reclaim free space of a bolt or badger store (no process may have it open)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := tool.Compact(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "compacted %s store: %s -> %s", rep.Driver, tool.FormatBytes(rep.BytesBefore), tool.FormatBytes(rep.BytesAfter))
			if rep.Note != "" {
				fmt.Fprintf(stdout, " (%s)", rep.Note)
			}
			fmt.Fprintln(stdout)
			return nil
		},
	}
}
