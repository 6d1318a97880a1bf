package host

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // image.Decode reads GIF
	_ "image/jpeg"
	_ "image/png"
	"io"
	"os"
	"strings"

	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights/train"
)

// MaxImageSide bounds the images DecodeImageFile reads, so that a
// 100000×100000 PNG header cannot make it allocate gigabytes.
const MaxImageSide = 4096

// maxImageFile bounds the bytes of an image file.
const maxImageFile = 64 << 20

// DecodeImageFile decodes a PNG, JPEG or GIF file of at most MaxImageSide
// pixels a side, with one clear error for anything else.
func DecodeImageFile(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxImageFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxImageFile {
		return nil, fmt.Errorf("%s: more than %d MiB: not an image this command reads", path, maxImageFile>>20)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if errors.Is(err, image.ErrFormat) {
		return nil, fmt.Errorf("%s: not a PNG, JPEG or GIF image", path)
	} else if err != nil {
		return nil, fmt.Errorf("%s: cannot read the %s image: %v", path, format, err)
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > MaxImageSide || cfg.Height > MaxImageSide {
		return nil, fmt.Errorf("%s: a %d×%d image; this command reads 1 to %d pixels a side", path, cfg.Width, cfg.Height, MaxImageSide)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: cannot decode the %s image: %v", path, format, err)
	}
	return img, nil
}

// SetImage is image i of an image set as a Go image: grey, or RGB for three
// channels.
func SetImage(s *train.Images, i int) image.Image {
	size, px := s.Image.Size, s.At(i)
	byteOf := func(x float32) uint8 { return uint8(min(255, max(0, x*255+0.5))) }
	if s.Image.Channels == 1 {
		g := image.NewGray(image.Rect(0, 0, size, size))
		for j, x := range px {
			g.Pix[j] = byteOf(x)
		}
		return g
	}
	rgba := image.NewRGBA(image.Rect(0, 0, size, size))
	plane := size * size
	for j := range plane {
		for c := range 3 {
			rgba.Pix[4*j+c] = byteOf(px[c*plane+j])
		}
		rgba.Pix[4*j+3] = 255
	}
	return rgba
}

// ToModelInput converts img to [C][S][S] values in [0, 1]: grey as
// luminance (0.299 R + 0.587 G + 0.114 B) for one channel, R, G, B for
// three; a size other than S×S is resized by area averaging (each output
// pixel is the mean of the input area it covers, a box filter that is exact
// for downscaling and blends neighbours for upscaling; the aspect ratio is not
// kept). It returns a note on what was changed, or "".
func ToModelInput(img image.Image, im model.ImageConfig) ([]float32, string) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	// The source as channels of floats.
	src := make([][]float64, im.Channels)
	for c := range src {
		src[c] = make([]float64, w*h)
	}
	colour := false
	for y := range h {
		for x := range w {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA() // premultiplied: transparent is black
			fr, fg, fb := float64(r)/0xffff, float64(g)/0xffff, float64(bl)/0xffff
			if r != g || g != bl {
				colour = true
			}
			switch {
			case im.Channels == 1 && r == g && g == bl:
				src[0][y*w+x] = fr // grey already: exactly its value
			case im.Channels == 1:
				src[0][y*w+x] = 0.299*fr + 0.587*fg + 0.114*fb
			default:
				src[0][y*w+x], src[1][y*w+x], src[2][y*w+x] = fr, fg, fb
			}
		}
	}
	var notes []string
	if colour && im.Channels == 1 {
		notes = append(notes, "converted to grey (luminance)")
	}
	s := im.Size
	out := make([]float32, im.Pixels())
	if w != s || h != s {
		notes = append([]string{fmt.Sprintf("resized from %d×%d to %d×%d (area average)", w, h, s, s)}, notes...)
	}
	sx, sy := float64(w)/float64(s), float64(h)/float64(s)
	for c := range im.Channels {
		plane := src[c]
		for ty := range s {
			y0, y1 := float64(ty)*sy, float64(ty+1)*sy
			for tx := range s {
				x0, x1 := float64(tx)*sx, float64(tx+1)*sx
				var sum, area float64
				for y := int(y0); y < h && float64(y) < y1; y++ {
					wy := min(float64(y+1), y1) - max(float64(y), y0)
					for x := int(x0); x < w && float64(x) < x1; x++ {
						wx := min(float64(x+1), x1) - max(float64(x), x0)
						sum += wx * wy * plane[y*w+x]
						area += wx * wy
					}
				}
				out[c*s*s+ty*s+tx] = float32(min(1, max(0, sum/area)))
			}
		}
	}
	return out, strings.Join(notes, ", ")
}

// InvertPixels turns every value x into 1 − x when invert is set: a dark
// object on a light ground, for a model trained on light on black.
func InvertPixels(px []float32, invert bool) {
	if invert {
		for i, x := range px {
			px[i] = 1 - x
		}
	}
}
