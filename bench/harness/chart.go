package harness

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"sort"
	"strings"
)

// A small rasteriser for the report's charts: rectangles, lines and the
// bitmap font of font.go on an RGBA image, written as PNG. No dependency
// beyond the standard library.

var (
	colWhite = color.RGBA{255, 255, 255, 255}
	colText  = color.RGBA{40, 40, 40, 255}
	colAxis  = color.RGBA{90, 90, 90, 255}
	colGrid  = color.RGBA{225, 225, 225, 255}
	colMuted = color.RGBA{120, 120, 120, 255}
)

// targetColor gives every target its colour in every chart.
func targetColor(t string) color.RGBA {
	switch t {
	case TargetDirect:
		return color.RGBA{150, 150, 150, 255}
	case TargetNginx:
		return color.RGBA{44, 160, 44, 255}
	case TargetHAProxy:
		return color.RGBA{31, 119, 180, 255}
	case TargetCaddy:
		return color.RGBA{255, 140, 30, 255}
	case TargetWsalive:
		return color.RGBA{214, 39, 40, 255}
	case TargetNginxL4:
		return color.RGBA{152, 223, 138, 255}
	case TargetHAProxyL4:
		return color.RGBA{174, 199, 232, 255}
	}
	return color.RGBA{100, 100, 100, 255}
}

// lighter mixes c with white.
func lighter(c color.RGBA, f float64) color.RGBA {
	mix := func(v uint8) uint8 { return uint8(float64(v) + (255-float64(v))*f) }
	return color.RGBA{mix(c.R), mix(c.G), mix(c.B), 255}
}

type canvas struct {
	img *image.RGBA
}

func newCanvas(w, h int) *canvas {
	c := &canvas{img: image.NewRGBA(image.Rect(0, 0, w, h))}
	c.fill(0, 0, w, h, colWhite)
	return c
}

func (c *canvas) set(x, y int, col color.RGBA) {
	if image.Pt(x, y).In(c.img.Rect) {
		c.img.SetRGBA(x, y, col)
	}
}

// fill paints the rectangle [x0,x1)×[y0,y1).
func (c *canvas) fill(x0, y0, x1, y1 int, col color.RGBA) {
	if x0 > x1 {
		x0, x1 = x1, x0
	}
	if y0 > y1 {
		y0, y1 = y1, y0
	}
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			c.set(x, y, col)
		}
	}
}

// line draws from (x0,y0) to (x1,y1) with a square pen of width w
// (Bresenham); dash > 0 draws dash pixels on, dash off.
func (c *canvas) line(x0, y0, x1, y1, w int, col color.RGBA, dash int) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := 1, 1
	if x0 > x1 {
		sx = -1
	}
	if y0 > y1 {
		sy = -1
	}
	err := dx + dy
	for i := 0; ; i++ {
		if dash <= 0 || (i/dash)%2 == 0 {
			c.fill(x0-w/2, y0-w/2, x0-w/2+w, y0-w/2+w, col)
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * err
		if e2 >= dy {
			err += dy
			x0 += sx
		}
		if e2 <= dx {
			err += dx
			y0 += sy
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// textWidth is the width of s drawn at scale.
func textWidth(s string, scale int) int {
	n := len([]rune(s))
	if n == 0 {
		return 0
	}
	return (n*(glyphW+1) - 1) * scale
}

// text draws s with its top-left corner at (x,y).
func (c *canvas) text(x, y int, s string, scale int, col color.RGBA) {
	for _, r := range s {
		g := glyph(r)
		for gy, row := range g {
			for gx, px := range row {
				if px == '#' {
					c.fill(x+gx*scale, y+gy*scale, x+(gx+1)*scale, y+(gy+1)*scale, col)
				}
			}
		}
		x += (glyphW + 1) * scale
	}
}

// textCentered draws s centred on x.
func (c *canvas) textCentered(x, y int, s string, scale int, col color.RGBA) {
	c.text(x-textWidth(s, scale)/2, y, s, scale, col)
}

// textRight draws s ending at x.
func (c *canvas) textRight(x, y int, s string, scale int, col color.RGBA) {
	c.text(x-textWidth(s, scale), y, s, scale, col)
}

// textUp draws s rotated a quarter turn counter-clockwise, reading bottom
// to top, centred vertically on y, its left edge at x.
func (c *canvas) textUp(x, y int, s string, scale int, col color.RGBA) {
	yy := y + textWidth(s, scale)/2
	for _, r := range s {
		g := glyph(r)
		for gy, row := range g {
			for gx, px := range row {
				if px == '#' {
					c.fill(x+gy*scale, yy-(gx+1)*scale, x+(gy+1)*scale, yy-gx*scale, col)
				}
			}
		}
		yy -= (glyphW + 1) * scale
	}
}

func (c *canvas) save(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, c.img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// niceTicks returns tick values from 0 to at least hi, 4 to 8 of them, at
// a step of 1, 2 or 5 times a power of ten.
func niceTicks(hi float64) []float64 {
	if hi <= 0 || math.IsNaN(hi) || math.IsInf(hi, 0) {
		hi = 1
	}
	raw := hi / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var ticks []float64
	for v := 0.0; ; v += step {
		ticks = append(ticks, v)
		if v >= hi-step*1e-9 {
			break
		}
	}
	return ticks
}

// formatNum writes v short: 41.2K, 1.5M, 0.35, 12.
func formatNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return trimZeros(fmt.Sprintf("%.2f", v/1e6)) + "M"
	case a >= 1e4:
		return trimZeros(fmt.Sprintf("%.1f", v/1e3)) + "K"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return trimZeros(fmt.Sprintf("%.1f", v))
	case a >= 1:
		return trimZeros(fmt.Sprintf("%.2f", v))
	case a == 0:
		return "0"
	}
	return trimZeros(fmt.Sprintf("%.3f", v))
}

func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// rect is a panel's area on the canvas.
type rect struct{ x0, y0, x1, y1 int }

// plotArea is the part of a panel inside its axes.
type plotArea struct {
	rect
	yMax float64
}

func (p plotArea) y(v float64) int {
	return p.y1 - int(math.Round(v/p.yMax*float64(p.y1-p.y0)))
}

// axes draws a panel's title, y axis with grid and label, and returns the
// plot area. The y axis runs from 0 to a nice value above hi.
func (c *canvas) axes(r rect, title, yLabel string, hi float64) plotArea {
	const scale = 2
	c.textCentered((r.x0+r.x1)/2, r.y0+4, title, scale, colText)
	p := plotArea{rect: rect{r.x0 + 80, r.y0 + 40, r.x1 - 12, r.y1 - 56}}
	ticks := niceTicks(hi)
	p.yMax = ticks[len(ticks)-1]
	for _, t := range ticks {
		y := p.y(t)
		c.line(p.x0, y, p.x1, y, 1, colGrid, 0)
		c.textRight(p.x0-8, y-glyphH, formatNum(t), scale, colAxis)
	}
	c.line(p.x0, p.y0, p.x0, p.y1, 2, colAxis, 0)
	c.line(p.x0, p.y1, p.x1, p.y1, 2, colAxis, 0)
	c.textUp(r.x0+4, (p.y0+p.y1)/2, yLabel, scale, colAxis)
	return p
}

// bar is one bar of a bar panel.
type bar struct {
	label  string
	value  float64 // NaN: no data
	lo, hi float64 // the spread over rounds, drawn as a whisker; NaN: none
	col    color.RGBA
	note   string // drawn above the bar instead of the value
}

// barPanel draws one bar per entry, and a dashed line at goal with its
// label when goalLabel is not empty.
func (c *canvas) barPanel(r rect, title, yLabel string, bars []bar, goal float64, goalLabel string) {
	hi := 0.0
	if goalLabel != "" {
		hi = goal
	}
	for _, b := range bars {
		for _, v := range []float64{b.value, b.hi} {
			if !math.IsNaN(v) {
				hi = max(hi, v)
			}
		}
	}
	p := c.axes(r, title, yLabel, hi*1.12)
	n := len(bars)
	if n == 0 {
		return
	}
	slot := float64(p.x1-p.x0) / float64(n)
	bw := int(slot * 0.62)
	for i, b := range bars {
		cx := p.x0 + int(slot*(float64(i)+0.5))
		c.textCentered(cx, p.y1+10, b.label, 2, colText)
		if math.IsNaN(b.value) {
			c.textCentered(cx, p.y1-30, "N/A", 2, colMuted)
			continue
		}
		y := p.y(b.value)
		c.fill(cx-bw/2, y, cx+bw/2, p.y1, b.col)
		if !math.IsNaN(b.lo) && !math.IsNaN(b.hi) && b.hi > b.lo {
			ylo, yhi := p.y(b.lo), p.y(b.hi)
			c.line(cx, ylo, cx, yhi, 2, colText, 0)
			c.line(cx-6, ylo, cx+6, ylo, 2, colText, 0)
			c.line(cx-6, yhi, cx+6, yhi, 2, colText, 0)
		}
		label := b.note
		if label == "" {
			label = formatNum(b.value)
		}
		top := y
		if !math.IsNaN(b.hi) {
			top = min(top, p.y(b.hi))
		}
		c.textCentered(cx, top-20, label, 2, colText)
	}
	if goalLabel != "" {
		// The line across the plot, its key under the target names.
		y := p.y(goal)
		c.line(p.x0, y, p.x1, y, 2, colText, 8)
		key := "DASHED: " + goalLabel
		x := (p.x0+p.x1)/2 - textWidth(key, 2)/2
		c.text(x, p.y1+32, key, 2, colText)
	}
}

// pairBar is a target with two values side by side (p50 and p99).
type pairBar struct {
	label string
	a, b  float64
	col   color.RGBA
}

// pairPanel draws two bars per entry: a in the target's colour, b lighter.
func (c *canvas) pairPanel(r rect, title, yLabel, aName, bName string, bars []pairBar) {
	hi := 0.0
	for _, b := range bars {
		for _, v := range []float64{b.a, b.b} {
			if !math.IsNaN(v) {
				hi = max(hi, v)
			}
		}
	}
	p := c.axes(r, title, yLabel, hi*1.15)
	n := len(bars)
	if n == 0 {
		return
	}
	slot := float64(p.x1-p.x0) / float64(n)
	bw := int(slot * 0.34)
	for i, b := range bars {
		cx := p.x0 + int(slot*(float64(i)+0.5))
		c.textCentered(cx, p.y1+10, b.label, 2, colText)
		for j, v := range []float64{b.a, b.b} {
			if math.IsNaN(v) {
				continue
			}
			col := b.col
			x0 := cx - bw
			if j == 1 {
				col = lighter(b.col, 0.55)
				x0 = cx
			}
			y := p.y(v)
			c.fill(x0, y, x0+bw, p.y1, col)
			c.textCentered(x0+bw/2, y-20, formatNum(v), 1, colText)
		}
	}
	// The legend: which shade is which.
	lx := p.x1 - textWidth(aName+"  "+bName, 2) - 60
	c.fill(lx, p.y0+4, lx+14, p.y0+18, colAxis)
	c.text(lx+20, p.y0+4, aName, 2, colText)
	lx2 := lx + 20 + textWidth(aName, 2) + 16
	c.fill(lx2, p.y0+4, lx2+14, p.y0+18, lighter(colAxis, 0.55))
	c.text(lx2+20, p.y0+4, bName, 2, colText)
}

// cdfSeries is one curve of a CDF panel: sorted values out of total.
type cdfSeries struct {
	label  string
	values []float64 // sorted
	total  int
	col    color.RGBA
	dash   int
}

// cdfPanel draws cumulative fractions of series over [0, xMax], with
// vertical markers.
func (c *canvas) cdfPanel(r rect, title, xLabel string, xMax float64, series []cdfSeries, markers map[string]float64, legendLowRight bool) {
	const scale = 2
	c.textCentered((r.x0+r.x1)/2, r.y0+4, title, scale, colText)
	p := rect{r.x0 + 80, r.y0 + 40, r.x1 - 16, r.y1 - 70}
	px := func(x float64) int { return p.x0 + int(math.Round(x/xMax*float64(p.x1-p.x0))) }
	py := func(f float64) int { return p.y1 - int(math.Round(f*float64(p.y1-p.y0))) }
	for _, f := range []float64{0, 0.25, 0.5, 0.75, 1} {
		y := py(f)
		c.line(p.x0, y, p.x1, y, 1, colGrid, 0)
		c.textRight(p.x0-8, y-glyphH, fmt.Sprintf("%.0f%%", f*100), scale, colAxis)
	}
	for _, t := range niceTicks(xMax) {
		if t > xMax*1.0001 {
			break
		}
		x := px(t)
		c.line(x, p.y0, x, p.y1, 1, colGrid, 0)
		c.textCentered(x, p.y1+10, formatNum(t), scale, colAxis)
	}
	c.textCentered((p.x0+p.x1)/2, p.y1+34, xLabel, scale, colAxis)
	c.textUp(r.x0+4, (p.y0+p.y1)/2, "PAIRS DETECTED", scale, colAxis)
	var names []string
	for name := range markers {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return markers[names[i]] < markers[names[j]] })
	for i, name := range names {
		if x := markers[name]; x <= xMax {
			c.line(px(x), p.y0, px(x), p.y1, 2, colMuted, 6)
			c.text(px(x)+6, p.y0+(p.y1-p.y0)/3+i*22, name, scale, colMuted)
		}
	}
	c.line(p.x0, p.y0, p.x0, p.y1, 2, colAxis, 0)
	c.line(p.x0, p.y1, p.x1, p.y1, 2, colAxis, 0)
	for _, s := range series {
		// A step function: 0 until the first detection, up by 1/total at
		// each, flat after the last.
		prevX, prevY := p.x0, py(0)
		for i, v := range s.values {
			if v > xMax {
				break
			}
			x := px(v)
			y := py(float64(i+1) / float64(max(s.total, 1)))
			c.line(prevX, prevY, x, prevY, 3, s.col, s.dash)
			c.line(x, prevY, x, y, 3, s.col, s.dash)
			prevX, prevY = x, y
		}
		c.line(prevX, prevY, p.x1, prevY, 3, s.col, s.dash)
	}
	// The legend, on white, where the curves are not: lower right when
	// legendLowRight (curves that rise early), else in the middle.
	lw := 0
	for _, s := range series {
		lw = max(lw, textWidth(s.label, scale))
	}
	lh := 22 * len(series)
	lx, ly := p.x0+(p.x1-p.x0)/5, p.y0+(p.y1-p.y0)/4
	if legendLowRight {
		lx, ly = p.x1-lw-60, p.y1-lh-40
	}
	if len(series) > 0 {
		c.fill(lx-8, ly-8, lx+42+lw+8, ly+lh+2, colWhite)
	}
	for _, s := range series {
		c.fill(lx, ly+3, lx+34, ly+9, s.col)
		if s.dash > 0 {
			c.fill(lx+12, ly+3, lx+22, ly+9, colWhite)
		}
		c.text(lx+42, ly, s.label, scale, colText)
		ly += 22
	}
}
