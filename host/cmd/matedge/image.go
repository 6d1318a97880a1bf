package main

import (
	"fmt"
	"image"
	_ "image/gif" // image.Decode reads GIF
	_ "image/jpeg"
	_ "image/png"
	"strconv"
	"strings"

	"github.com/matedge/matedge/host"
	"github.com/matedge/matedge/model"
	"github.com/matedge/matedge/weights/train"
)

// testImagePrefix names a Fashion-MNIST test image instead of a file:
// "test:N" is test image N (0 … 9999).
const testImagePrefix = "test:"

// queryImage is an image made ready for a vision model.
type queryImage struct {
	pixels []float32 // [C][S][S] in [0, 1]
	label  int       // the true class of a test:N image; -1 for a file
	note   string    // what was done to it (resized, converted), or ""
}

// readQueryImage reads spec — a PNG, JPEG or GIF file, or test:N — as the
// input of a model taking im, converting colour to grey (luminance) or grey
// to RGB and resizing by area averaging as needed. Transparent pixels count
// as black. invert turns x into 1 − x: Fashion-MNIST's clothes are light on a
// black ground, so a photo of a dark object on white wants -invert.
func readQueryImage(spec string, im model.ImageConfig, invert bool, cache string) (*queryImage, error) {
	var src image.Image
	label := -1
	if n, ok := strings.CutPrefix(spec, testImagePrefix); ok {
		i, err := strconv.Atoi(n)
		if err != nil {
			return nil, fmt.Errorf("-image %s: want test:N with N a test image number", spec)
		}
		_, test, err := train.LoadImages("fashion-mnist", cache)
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= test.Len() {
			return nil, fmt.Errorf("-image %s: Fashion-MNIST has test images 0 to %d", spec, test.Len()-1)
		}
		if test.Image.Size == im.Size && test.Image.Channels == im.Channels {
			// The model's own input shape: the set's values, untouched.
			q := &queryImage{pixels: append([]float32(nil), test.At(i)...), label: test.Labels[i]}
			host.InvertPixels(q.pixels, invert)
			return q, nil
		}
		src, label = host.SetImage(test, i), test.Labels[i]
	} else {
		var err error
		if src, err = host.DecodeImageFile(spec); err != nil {
			return nil, err
		}
	}
	q := &queryImage{label: label}
	q.pixels, q.note = host.ToModelInput(src, im)
	host.InvertPixels(q.pixels, invert)
	return q, nil
}
