package train

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/matedge/matedge/model"
)

// Images is a labelled set of images: what a vision model trains on, is
// tested on, and what a retrieval index is built from.
type Images struct {
	Name    string
	Image   model.ImageConfig // Patch is 0: the set does not choose it
	Pixels  []float32         // [N][C][S][S], values in [0, 1]
	Labels  []int             // [N], each in [0, len(Classes))
	Classes []string          // class names
	SHA256  string            // of the image and label files, as read
}

// Len is the number of images.
func (s *Images) Len() int { return len(s.Labels) }

// At returns image i's pixels.
func (s *Images) At(i int) []float32 {
	n := s.Image.Pixels()
	return s.Pixels[i*n : (i+1)*n]
}

// Slice returns images [lo, hi) as a set sharing s's pixels.
func (s *Images) Slice(lo, hi int) *Images {
	n := s.Image.Pixels()
	return &Images{Name: s.Name, Image: s.Image, Pixels: s.Pixels[lo*n : hi*n], Labels: s.Labels[lo:hi], Classes: s.Classes, SHA256: s.SHA256}
}

// FashionMNISTDir is where Debian's dataset-fashion-mnist installs the IDX files.
const FashionMNISTDir = "usr/share/datasets/fashion-mnist"

// FashionMNISTClasses are Fashion-MNIST's ten labels, in label order.
var FashionMNISTClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

// IsImageSet reports whether name is an image data set LoadImages reads.
func IsImageSet(name string) bool { return name == "fashion-mnist" }

// LoadImages reads an image data set by name, split into its training and
// test sets. "fashion-mnist" is Zalando's Fashion-MNIST (60,000 + 10,000
// grey 28×28 images of clothes in 10 classes) from Debian's
// dataset-fashion-mnist, downloaded into cache with apt-get when not
// installed.
func LoadImages(name, cache string) (trainSet, testSet *Images, err error) {
	if name != "fashion-mnist" {
		return nil, nil, fmt.Errorf("image data %q: the only image set is fashion-mnist", name)
	}
	dir, err := debDir("dataset-fashion-mnist", FashionMNISTDir, "t10k-labels-idx1-ubyte.gz", cache)
	if err != nil {
		return nil, nil, fmt.Errorf("fashion-mnist: %w", err)
	}
	read := func(prefix string) (*Images, error) {
		set, err := ReadIDXFiles(filepath.Join(dir, prefix+"-images-idx3-ubyte.gz"), filepath.Join(dir, prefix+"-labels-idx1-ubyte.gz"))
		if err != nil {
			return nil, fmt.Errorf("fashion-mnist: %w", err)
		}
		set.Name, set.Classes = "fashion-mnist/"+prefix, FashionMNISTClasses
		for i, l := range set.Labels {
			if l >= len(FashionMNISTClasses) {
				return nil, fmt.Errorf("fashion-mnist: %s label %d is %d, want 0 to 9", prefix, i, l)
			}
		}
		return set, nil
	}
	if trainSet, err = read("train"); err != nil {
		return nil, nil, err
	}
	if testSet, err = read("t10k"); err != nil {
		return nil, nil, err
	}
	return trainSet, testSet, nil
}

// ReadIDXFiles reads a pair of IDX files (gzip-compressed when the name ends
// in .gz): square grey images (magic 0x00000803, N×S×S bytes) and their
// labels (0x00000801, N bytes).
func ReadIDXFiles(imagesPath, labelsPath string) (*Images, error) {
	h := sha256.New()
	open := func(path string) ([]byte, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		var r io.Reader = bufio.NewReader(f)
		if strings.HasSuffix(path, ".gz") {
			z, err := gzip.NewReader(r)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			r = z
		}
		b, err := io.ReadAll(io.LimitReader(r, 1<<30))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		h.Write(b)
		return b, nil
	}
	imgs, err := open(imagesPath)
	if err != nil {
		return nil, err
	}
	labels, err := open(labelsPath)
	if err != nil {
		return nil, err
	}
	set, err := ParseIDX(imgs, labels)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", imagesPath, labelsPath, err)
	}
	set.SHA256 = hex.EncodeToString(h.Sum(nil))
	return set, nil
}

// ErrIDX: bytes that are not the IDX image or label file they should be.
var ErrIDX = errors.New("not an IDX file of the expected kind")

// ParseIDX decodes IDX image and label files (uncompressed).
func ParseIDX(images, labels []byte) (*Images, error) {
	if len(images) < 16 || binary.BigEndian.Uint32(images) != 0x803 {
		return nil, fmt.Errorf("%w: images need magic 0x00000803 and 3 dimensions", ErrIDX)
	}
	if len(labels) < 8 || binary.BigEndian.Uint32(labels) != 0x801 {
		return nil, fmt.Errorf("%w: labels need magic 0x00000801 and 1 dimension", ErrIDX)
	}
	n, rows, cols := binary.BigEndian.Uint32(images[4:]), binary.BigEndian.Uint32(images[8:]), binary.BigEndian.Uint32(images[12:])
	switch {
	case rows != cols || rows == 0 || rows > 1024:
		return nil, fmt.Errorf("%w: images are %d×%d; want square, at most 1024", ErrIDX, rows, cols)
	case uint64(len(images)-16) != uint64(n)*uint64(rows)*uint64(cols):
		return nil, fmt.Errorf("%w: %d images of %d×%d need %d bytes, have %d", ErrIDX, n, rows, cols, uint64(n)*uint64(rows)*uint64(cols), len(images)-16)
	case binary.BigEndian.Uint32(labels[4:]) != n || len(labels)-8 != int(n):
		return nil, fmt.Errorf("%w: %d images but the labels file says %d and holds %d", ErrIDX, n, binary.BigEndian.Uint32(labels[4:]), len(labels)-8)
	}
	set := &Images{Image: model.ImageConfig{Size: int(rows), Channels: 1}, Pixels: make([]float32, len(images)-16), Labels: make([]int, n)}
	for i, b := range images[16:] {
		set.Pixels[i] = float32(b) / 255
	}
	for i, b := range labels[8:] {
		set.Labels[i] = int(b)
	}
	return set, nil
}
