package pointtable

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// Table is one sheet of cells, row by row ("" sheet for a CSV file).
type Table struct {
	Sheet string
	Rows  [][]string
	// Numeric marks columns written as numbers in an xlsx file (by index).
	Numeric []bool
}

// MaxFileBytes bounds a table file (a point table of 10,000 rows is ~2 MB).
const MaxFileBytes = 64 << 20

// ReadFile reads the sheet (default: one named "points", else the first)
// of an .xlsx file, or a .csv file (UTF-8, with or without BOM, or GB18030
// as Excel saves it on Chinese Windows; comma, semicolon or tab separated).
func ReadFile(path, sheet string) (*Table, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > MaxFileBytes {
		return nil, fmt.Errorf("%s: %d bytes; a point table is at most %d", path, fi.Size(), MaxFileBytes)
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".xlsx", ".xlsm":
		return readXLSX(path, sheet)
	case ".csv", ".txt":
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		return ReadCSV(b)
	}
	return nil, fmt.Errorf("%s: want an .xlsx or .csv file", path)
}

func readXLSX(path, sheet string) (*Table, error) {
	f, err := excelize.OpenFile(path, excelize.Options{RawCellValue: true})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	list := f.GetSheetList()
	if sheet == "" {
		sheet = list[0]
		for _, s := range list {
			if strings.EqualFold(s, "points") || s == "点表" {
				sheet = s
			}
		}
	}
	rows, err := f.GetRows(sheet, excelize.Options{RawCellValue: true})
	if err != nil {
		return nil, fmt.Errorf("%s: sheet %q: %w (sheets: %s)", path, sheet, err, strings.Join(list, ", "))
	}
	return &Table{Sheet: sheet, Rows: rows}, nil
}

// ReadCSV parses CSV bytes.
func ReadCSV(b []byte) (*Table, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(b) {
		u, err := simplifiedchinese.GB18030.NewDecoder().Bytes(b)
		if err != nil {
			return nil, fmt.Errorf("neither UTF-8 nor GB18030 text: %w", err)
		}
		b = u
	}
	first, _, _ := bytes.Cut(b, []byte("\n"))
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	for _, sep := range []rune{';', '\t'} {
		if bytes.Count(first, []byte(string(sep))) > bytes.Count(first, []byte(",")) {
			r.Comma = sep
		}
	}
	var rows [][]string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		rows = append(rows, rec)
	}
	return &Table{Rows: rows}, nil
}

// WriteXLSX writes the tables as sheets of one workbook.
func WriteXLSX(path string, tables ...*Table) error {
	f := excelize.NewFile()
	defer f.Close()
	for i, t := range tables {
		if i == 0 {
			if err := f.SetSheetName(f.GetSheetName(0), t.Sheet); err != nil {
				return err
			}
		} else if _, err := f.NewSheet(t.Sheet); err != nil {
			return err
		}
		for r, row := range t.Rows {
			cells := make([]any, len(row))
			for c, v := range row {
				cells[c] = v
				if r > 0 && c < len(t.Numeric) && t.Numeric[c] && v != "" {
					if n, err := strconv.ParseFloat(v, 64); err == nil {
						cells[c] = n
					}
				}
			}
			if err := f.SetSheetRow(t.Sheet, cellRef(1, r+1), &cells); err != nil {
				return err
			}
		}
		if len(t.Rows) > 0 {
			f.SetPanes(t.Sheet, &excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"})
		}
	}
	return f.SaveAs(path)
}

// WriteCSV writes t as UTF-8 CSV with a BOM (so that Excel shows Chinese
// text right).
func WriteCSV(w io.Writer, t *Table) error {
	if _, err := w.Write([]byte("\xef\xbb\xbf")); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	if err := cw.WriteAll(t.Rows); err != nil {
		return err
	}
	return cw.Error()
}
