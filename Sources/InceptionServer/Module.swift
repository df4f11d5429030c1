import Inception
